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


@dataclass(frozen=True, slots=True)
class _Plan:
    """Which extractors a resource needs, found from its top-level keys."""

    extractors: tuple[ParamExtractor, ...]
    always: frozenset[int]  # positions of the extractors that run on every resource
    by_key: dict[str, tuple[int, ...]]  # top-level key -> positions of those reading it


@cache
def _plan(resource_type: str) -> _Plan:
    found = extractors(resource_type)
    by_key: dict[str, list[int]] = {}
    for i, ex in enumerate(found):
        for key in ex.roots or ():
            by_key.setdefault(key, []).append(i)
    always = frozenset(i for i, ex in enumerate(found) if ex.roots is None)
    return _Plan(found, always, {k: tuple(v) for k, v in by_key.items()})


def index_rows(
    resource_type: str, resource: dict[str, Any], rid: int | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """{index table: [(pid, *values), ...]} for one resource; (rid, pid, *values) with `rid`."""
    plan = _plan(resource_type)
    wanted = set(plan.always)
    by_key = plan.by_key
    for key in resource:
        positions = by_key.get(key)
        if positions is not None:
            wanted.update(positions)
    out: dict[str, list[tuple[Any, ...]]] = {}
    found = plan.extractors
    for i in sorted(wanted):  # in parameter order, as without the plan
        ex = found[i]
        values = ex.extract(resource)
        if not values:
            continue
        rows = ex.rows(values)
        if rows:
            lead = (ex.param.pid,) if rid is None else (rid, ex.param.pid)
            bucket = out.get(ex.table)
            if bucket is None:
                out[ex.table] = [lead + row for row in rows]
            else:
                bucket.extend([lead + row for row in rows])
    return out
