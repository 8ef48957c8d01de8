"""Index rows of a resource, per search parameter of its type (compiled once per type)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from projections.fhir_store.definitions import Registry, SearchParam, load_registry
from projections.fhir_store.fhirpath_compile import Extractor, compile_expression, root_keys
from projections.fhir_store.index_values import ROWS
from projections.fhir_store.schema import INDEX_TABLES


@dataclass(frozen=True, slots=True)
class ParamExtractor:
    param: SearchParam
    table: str
    extract: Extractor
    rows: Callable[[list[Any]], list[Any]]
    compiled: bool
    roots: frozenset[str] | None  # top-level keys it reads (None: always run it)


@cache
def extractors(resource_type: str, registry: Registry | None = None) -> tuple[ParamExtractor, ...]:
    registry = registry or load_registry()
    out = []
    for param in registry.params(resource_type).values():
        extract, compiled = compile_expression(param.expression, resource_type)
        table = INDEX_TABLES[param.kind][0]
        # `X.exists() and ...` yields false on an absent X: it must run on every resource.
        plain_path = compiled and "exists()" not in param.expression
        roots = root_keys(param.expression, resource_type) if plain_path else None
        out.append(ParamExtractor(param, table, extract, ROWS[param.kind], compiled, roots))
    return tuple(out)


def index_rows(resource_type: str, resource: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """{index table: [(pid, *values), ...]} for one resource."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    keys = resource.keys()
    for ex in extractors(resource_type):
        if ex.roots is not None and ex.roots.isdisjoint(keys):
            continue
        values = ex.extract(resource)
        if not values:
            continue
        rows = ex.rows(values)
        if rows:
            pid = ex.param.pid
            bucket = out.setdefault(ex.table, [])
            bucket.extend((pid, *row) for row in rows)
    return out
