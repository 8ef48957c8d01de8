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
from projections.fhir_store.index_values import ROWS
from projections.fhir_store.schema import INDEX_TABLES
from projections.fhirpath import Fn, compile_path
from projections.fhirpath.search import branch_steps, root_keys

Extractor = Callable[..., list[Any]]  # a resource (and variables, unused here) to values
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
        path = compile_path(param.expression, resource_type)
        extract, compiled = path.evaluate, path.compiled
        table = INDEX_TABLES[param.kind][0]
        # `X.exists() and ...` yields false on an absent X: it must run on every resource.
        plain_path = compiled and "exists()" not in param.expression
        roots = root_keys(param.expression, resource_type) if plain_path else None
        out.append(ParamExtractor(param, table, extract, ROWS[param.kind], compiled, roots))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class _Branch:
    """One distinct union branch of a type with the row builder of its parameters' kind."""

    node: int  # the step that ends it (its values), or -1 for a whole opaque expression
    extract: Extractor | None  # the opaque expression (a pattern compiled whole), else None
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

    nodes: tuple[int, ...]  # steps to run, parents first
    branches: tuple[int, ...]
    emits: tuple[_Emit, ...]


class _TypePlan:
    """A type's parameters as one tree of steps (a path prefix shared by branches is walked
    once), their distinct branches, and what each key set of a resource needs."""

    def __init__(self, resource_type: str) -> None:
        self.parents: list[int] = []  # per step: the step it continues, -1 for the resource
        self.steps: list[Fn] = []
        self.branches: list[_Branch] = []
        self.emits: list[_Emit] = []
        node_of: dict[tuple[int, str], int] = {}
        position: dict[tuple[str, RowBuilder], int] = {}
        for ex in extractors(resource_type):
            parts = split_union(ex.param.expression) if ex.roots is not None else []
            keyed = [branch_steps(part, resource_type) for part in parts]
            positions = []
            if not parts or any(k is None for k in keyed):  # a pattern compiled whole
                key = (ex.param.expression, ex.rows)
                if key not in position:
                    position[key] = len(self.branches)
                    self.branches.append(_Branch(-1, ex.extract, ex.rows, ex.roots))
                positions.append(position[key])
            for part, steps in zip(parts, keyed, strict=True):
                if steps is None:
                    continue
                node = -1
                for name, step in steps:
                    found = node_of.get((node, name))
                    if found is None:
                        found = node_of[(node, name)] = len(self.steps)
                        self.parents.append(node)
                        self.steps.append(step)
                    node = found
                key = (f"#{node}", ex.rows)
                if key not in position:
                    position[key] = len(self.branches)
                    self.branches.append(
                        _Branch(node, None, ex.rows, root_keys(part, resource_type))
                    )
                positions.append(position[key])
            self.emits.append(_Emit(ex.table, ex.param.pid, tuple(dict.fromkeys(positions))))
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
            nodes: set[int] = set()
            for i in wanted:
                node = self.branches[i].node
                while node >= 0 and node not in nodes:
                    nodes.add(node)
                    node = self.parents[node]
            chosen = set(wanted)
            emits = tuple(e for e in self.emits if not chosen.isdisjoint(e.branches))
            found = _Needed(tuple(sorted(nodes)), wanted, emits)
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
    parents, steps = plan.parents, plan.steps
    top = [resource]
    values: dict[int, list[Any]] = {}
    for node in needed.nodes:  # parents come first: a step's input is ready
        parent = parents[node]
        found = top if parent < 0 else values.get(parent)
        if found:
            values[node] = steps[node](found)
    branches = plan.branches
    rows_of: dict[int, list[Any]] = {}
    for i in needed.branches:
        branch = branches[i]
        selected = values.get(branch.node) if branch.extract is None else branch.extract(resource)
        if selected:
            rows = branch.rows(selected)
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
