"""Index rows of a resource, per search parameter of its type (compiled once per type).

Per type, the parameters' FHIRPath unions are split into their branches and the distinct
(branch, row builder) pairs kept once: `Observation.code` serves both `code` and
`combo-code`, `Patient.name` both `name` and `phonetic`. Per resource, each branch its
top-level keys make relevant is evaluated once and turned into rows once; a parameter's
rows are its branches' rows (a union's without repeats, in the order the union gives).
What a resource of a given key set needs is worked out once and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from projections.fhir_store.definitions import Registry, SearchParam, load_registry, split_union
from projections.fhir_store.fhirpath_compile import Extractor, compile_expression, root_keys
from projections.fhir_store.index_values import ROWS
from projections.fhir_store.schema import INDEX_TABLES

RowBuilder = Callable[[list[Any]], list[Any]]
_PLANS_PER_TYPE = 4096  # distinct top-level key sets remembered per type


@dataclass(frozen=True, slots=True)
class ParamExtractor:
    param: SearchParam
    table: str
    extract: Extractor
    rows: RowBuilder
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
class _Branch:
    """One distinct union branch of a type with the row builder of its parameters' kind."""

    extract: Extractor
    rows: RowBuilder
    roots: frozenset[str] | None  # None: evaluated on every resource


@dataclass(frozen=True, slots=True)
class _Emit:
    """A parameter's rows: those of its branches (positions in the type's branch list)."""

    table: str
    pid: int
    branches: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Needed:
    """What a resource with one set of top-level keys needs evaluated, and emits."""

    branches: tuple[int, ...]
    emits: tuple[_Emit, ...]


class _TypePlan:
    """The distinct branches of a type's parameters, and what each key set needs."""

    def __init__(self, resource_type: str) -> None:
        self.branches: list[_Branch] = []
        self.emits: list[_Emit] = []
        position: dict[tuple[str, RowBuilder], int] = {}
        for ex in extractors(resource_type):
            parts = split_union(ex.param.expression) if ex.roots is not None else []
            if len(parts) <= 1:  # one branch, or a whole expression compiled by pattern
                keys = [(ex.param.expression, ex.rows)]
                made = [(ex.extract, ex.roots)]
            else:
                keys = [(part, ex.rows) for part in parts]
                made = [
                    (compile_expression(part, resource_type)[0], root_keys(part, resource_type))
                    for part in parts
                ]
            positions = []
            for key, (extract, roots) in zip(keys, made, strict=True):
                if key not in position:
                    position[key] = len(self.branches)
                    self.branches.append(_Branch(extract, ex.rows, roots))
                positions.append(position[key])
            self.emits.append(_Emit(ex.table, ex.param.pid, tuple(positions)))
        self._needed: dict[tuple[str, ...], _Needed] = {}

    def needed(self, keys: tuple[str, ...]) -> _Needed:
        found = self._needed.get(keys)
        if found is None:
            present = set(keys)
            wanted = tuple(
                i
                for i, branch in enumerate(self.branches)
                if branch.roots is None or not branch.roots.isdisjoint(present)
            )
            chosen = set(wanted)
            emits = tuple(e for e in self.emits if not chosen.isdisjoint(e.branches))
            found = _Needed(wanted, emits)
            if len(self._needed) < _PLANS_PER_TYPE:
                self._needed[keys] = found
        return found


@cache
def _plan(resource_type: str) -> _TypePlan:
    return _TypePlan(resource_type)


def index_rows(
    resource_type: str, resource: dict[str, Any], rid: int | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """{index table: [(pid, *values), ...]} for one resource; (rid, pid, *values) with `rid`."""
    plan = _plan(resource_type)
    needed = plan.needed(tuple(resource))
    branches = plan.branches
    rows_of: dict[int, list[Any]] = {}
    for i in needed.branches:
        branch = branches[i]
        values = branch.extract(resource)
        if values:
            rows = branch.rows(values)
            if rows:
                rows_of[i] = rows
    out: dict[str, list[tuple[Any, ...]]] = {}
    for emit in needed.emits:
        if len(emit.branches) == 1:
            single = rows_of.get(emit.branches[0])
            if not single:
                continue
            rows = single
        else:
            parts = [rows_of[i] for i in emit.branches if i in rows_of]
            if not parts:
                continue
            rows = parts[0] if len(parts) == 1 else list(dict.fromkeys(r for p in parts for r in p))
        lead = (emit.pid,) if rid is None else (rid, emit.pid)
        bucket = out.get(emit.table)
        if bucket is None:
            out[emit.table] = [lead + row for row in rows]
        else:
            bucket.extend([lead + row for row in rows])
    return out
