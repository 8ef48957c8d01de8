"""FHIR search over the store: conditions, paging, sorting, _include/_revinclude, totals.

Results are in a deterministic order (the _sort keys, then the resource id), so paging by
offset is stable while the store does not change. Result parameters supported: _count
(default 20, at most 1000; 0 answers the total only), _offset (the next page; see
SearchResult.next_offset), _sort, _include / _revinclude (with :iterate, 3 levels at most),
_summary=count|data|false, _elements, _total=none|estimate|accurate (default accurate).
The limits (search_limits.py) are checked as the request is parsed; a search that is within
them but still beyond what SQLite can run is a SearchError too, never a bare sqlite3 error.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from projections.fhir_store.definitions import (
    BUILTIN,
    UNSUPPORTED_RESOURCE_PARAMS,
    Registry,
)
from projections.fhir_store.elements import only_elements, without_text
from projections.fhir_store.errors import SearchError
from projections.fhir_store.models import SearchResult, StoredResource
from projections.fhir_store.reads import current_by_rids
from projections.fhir_store.schema import INDEX_TABLES
from projections.fhir_store.search_conditions import Cond, ConditionBuilder, compartment_cond
from projections.fhir_store.search_limits import (
    DEFAULT_COUNT,
    MAX_COUNT,
    MAX_INCLUDE_DEPTH,
    MAX_OFFSET,
    MAX_SORT_KEYS,
    check_counts,
    whole_number,
)

ESTIMATE_CAP = 2000  # rows a candidate driver is counted up to when choosing one
IGNORED = frozenset({"_format", "_pretty"})
# Sort column per index table: (ascending aggregate, descending aggregate).
_SORT_COLUMN = {
    "ix_string": ("MIN(x.norm)", "MAX(x.norm)"),
    "ix_token": ("MIN(x.code)", "MAX(x.code)"),
    "ix_date": ("MIN(x.lo)", "MAX(x.hi)"),
    "ix_reference": ("MIN(x.ttype || '/' || x.tid)", "MAX(x.ttype || '/' || x.tid)"),
    "ix_number": ("MIN(x.value)", "MAX(x.value)"),
    "ix_uri": ("MIN(x.uri)", "MAX(x.uri)"),
}


@dataclass
class _Request:
    conds: list[Cond] = field(default_factory=list)
    count: int = DEFAULT_COUNT
    offset: int = 0
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (name, descending)
    includes: list[tuple[str, bool]] = field(default_factory=list)  # (spec, iterate)
    revincludes: list[tuple[str, bool]] = field(default_factory=list)
    summary: str = "false"
    elements: list[str] | None = None
    total: str = "accurate"


# What SQLite says when a statement is beyond its compile-time limits (expression depth,
# ORDER BY terms, bound variables, LIKE pattern length, ...): the search's fault, not ours.
_SQLITE_LIMITS = ("too large", "too many", "too complex", "too big", "too deep", "overflow")


class Searcher:
    """Runs searches on one connection."""

    def __init__(self, conn: sqlite3.Connection, registry: Registry) -> None:
        self.conn = conn
        self.registry = registry
        self.builder = ConditionBuilder(registry)

    def _parse(
        self, resource_type: str, params: list[tuple[str, str]], compartment: tuple[str, str] | None
    ) -> _Request:
        req = _Request()
        check_counts(params)
        for key, value in params:
            name = key.split(":", 1)[0].split(".", 1)[0]
            if name in IGNORED:
                continue
            if key == "_count":
                req.count = whole_number(key, value, 0, MAX_COUNT)
            elif key == "_offset":
                req.offset = whole_number(key, value, 0, MAX_OFFSET)
            elif key == "_sort":
                items = value.split(",")
                if len(req.sort) + len(items) > MAX_SORT_KEYS:
                    raise SearchError(key, f"at most {MAX_SORT_KEYS} sort keys")
                for item in items:
                    item = item.strip()
                    descending = item.startswith("-")
                    req.sort.append((item.lstrip("-"), descending))
            elif name in ("_include", "_revinclude"):
                iterate = key.endswith(":iterate") or key.endswith(":recurse")
                if key not in (name, f"{name}:iterate", f"{name}:recurse"):
                    raise SearchError(key, "unknown modifier")
                (req.includes if name == "_include" else req.revincludes).append((value, iterate))
            elif key == "_summary":
                if value not in ("count", "data", "false"):
                    raise SearchError(
                        key, f"_summary={value} is not supported (count, data, false)"
                    )
                req.summary = value
            elif key == "_elements":
                req.elements = [e.strip() for e in value.split(",") if e.strip()]
            elif key == "_total":
                if value not in ("none", "estimate", "accurate"):
                    raise SearchError(key, "_total is none, estimate or accurate")
                req.total = value
            elif name in UNSUPPORTED_RESOURCE_PARAMS:
                raise SearchError(key, "not supported by this server")
            elif (
                name.startswith("_")
                and name not in BUILTIN
                and name not in self.registry.params(resource_type)
            ):
                raise SearchError(key, "unknown search parameter")
            else:
                req.conds.append(self.builder.build(resource_type, key, value, compartment))
        if compartment is not None:
            req.conds.append(compartment_cond(self.registry, resource_type, compartment))
        return req

    def _pick_driver(self, drivers: list[Cond]) -> Cond | None:
        """The condition to read first: the fewest rows (counted up to a cap), then priority.

        Candidates are counted in priority order, each only up to the best count so far (a
        condition with as many rows cannot win): `patient=x&code=c` reads the patient's few
        index rows, then as many of the common code's, not thousands of them.
        """
        if len(drivers) < 2:
            return drivers[0] if drivers else None
        best: Cond | None = None
        best_rows = ESTIMATE_CAP
        for cond in sorted(drivers, key=lambda c: c.priority):
            assert cond.driver_sql is not None
            # Without DISTINCT, so that LIMIT stops the scan early (an over-count is fine).
            sample = cond.driver_sql.replace("SELECT DISTINCT ", "SELECT ", 1)
            rows = self.conn.execute(
                f"SELECT count(*) FROM ({sample} LIMIT ?)", [*cond.driver_args, best_rows]
            ).fetchone()[0]
            if best is None or rows < best_rows:
                best, best_rows = cond, rows
            if best_rows == 0:
                break
        return best

    def _order_by(self, resource_type: str, sort: list[tuple[str, bool]]) -> tuple[str, list[Any]]:
        terms = []
        for name, descending in sort:
            direction = "DESC" if descending else "ASC"
            if name == "_id":
                terms.append(f"r.id {direction}")
                continue
            if name == "_lastUpdated":
                terms.append(f"r.lu {direction}")
                continue
            param = self.registry.params(resource_type).get(name)
            if param is None:
                raise SearchError("_sort", f"unknown search parameter {name!r} for {resource_type}")
            table = INDEX_TABLES[param.kind][0]
            aggregate = _SORT_COLUMN[table][1 if descending else 0]
            key = f"(SELECT {aggregate} FROM {table} x WHERE x.rid = r.rid AND x.pid = {param.pid})"
            terms.append(f"{key} IS NULL, {key} {direction}")  # resources without it last
        terms.append("r.id ASC")
        return ", ".join(terms), []

    def search(
        self,
        resource_type: str,
        params: list[tuple[str, str]],
        compartment: tuple[str, str] | None = None,
    ) -> SearchResult:
        if resource_type not in self.registry.by_type:
            raise SearchError("type", f"resource type {resource_type!r} is not served")
        req = self._parse(resource_type, params, compartment)
        try:
            return self._run(resource_type, req)
        except (sqlite3.OperationalError, sqlite3.DataError, OverflowError) as exc:
            message = str(exc)
            if isinstance(exc, sqlite3.OperationalError) and not any(
                limit in message.lower() for limit in _SQLITE_LIMITS
            ):
                raise  # the store's own failure (I/O, corruption): not the client's
            raise SearchError(
                "", f"this search is too large for the store ({message}); "
                "use fewer parameters, values or sort keys",
            ) from None  # fmt: skip

    def _run(self, resource_type: str, req: _Request) -> SearchResult:
        driver = self._pick_driver([c for c in req.conds if c.driver_sql is not None])
        filters = [c for c in req.conds if c is not driver]
        args: list[Any] = []
        if driver is not None:
            source = f"({driver.driver_sql}) d CROSS JOIN resources r ON r.rid = d.rid"
            args.extend(driver.driver_args)
        else:
            source = "resources r"
        where = ["r.type = ?", "r.deleted = 0"]
        args.append(resource_type)
        for cond in filters:
            where.append(cond.filter_for("r"))
            args.extend(cond.args)
        body = f"FROM {source} WHERE {' AND '.join(where)}"

        if req.summary == "count" or req.count == 0:
            return SearchResult([], [], self._count(body, args), None)

        order, order_args = self._order_by(resource_type, req.sort)
        page = self.conn.execute(
            f"SELECT r.rid {body} ORDER BY {order} LIMIT ? OFFSET ?",
            [*args, *order_args, req.count + 1, req.offset],
        ).fetchall()
        more = len(page) > req.count
        total: int | None = None
        if req.total != "none":
            # A page that ends before the limit holds the last match: it gives the total,
            # unless it is empty past the first page (then the offset may overshoot it).
            ends = not more and (bool(page) or req.offset == 0)
            total = req.offset + len(page) if ends else self._count(body, args)
        rids = [row[0] for row in page[: req.count]]
        found = current_by_rids(self.conn, rids)
        matches = [found[rid] for rid in rids if rid in found]
        included = self._included(resource_type, rids, req)
        if req.elements is not None:
            wanted = set(req.elements)
            matches = [_replace_json(m, only_elements(m.json, wanted)) for m in matches]
        elif req.summary == "data":
            matches = [_replace_json(m, without_text(m.json)) for m in matches]
        return SearchResult(matches, included, total, req.offset + req.count if more else None)

    def _count(self, body: str, args: list[Any]) -> int:
        count: int = self.conn.execute(f"SELECT count(*) {body}", args).fetchone()[0]
        return count

    # -- _include / _revinclude ------------------------------------------------------------

    def _include_params(self, spec: str, param_name: str) -> tuple[str, list[int], str | None]:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise SearchError(param_name, f"expected Type:param[:targetType], not {spec!r}")
        source_type, name = parts[0], parts[1]
        target = parts[2] if len(parts) == 3 else None
        params = self.registry.params(source_type)
        if not params:
            raise SearchError(param_name, f"resource type {source_type!r} is not served")
        if name == "*":
            pids = [p.pid for p in params.values() if p.kind == "reference"]
        else:
            param = params.get(name)
            if param is None or param.kind != "reference":
                raise SearchError(param_name, f"{source_type}:{name} is not a reference parameter")
            pids = [param.pid]
        return source_type, pids, target

    def _included(self, resource_type: str, rids: list[int], req: _Request) -> list[StoredResource]:
        if not rids or not (req.includes or req.revincludes):
            return []
        seen = set(rids)
        out: list[StoredResource] = []
        frontier = {resource_type: list(rids)}
        for depth in range(MAX_INCLUDE_DEPTH):
            new: dict[str, list[int]] = {}
            for spec, iterate in req.includes:
                if depth > 0 and not iterate:
                    continue
                source_type, pids, target = self._include_params(spec, "_include")
                for rid in self._forward(frontier.get(source_type, []), pids, target):
                    if rid not in seen:
                        seen.add(rid)
                        new.setdefault("", []).append(rid)
            for spec, iterate in req.revincludes:
                if depth > 0 and not iterate:
                    continue
                source_type, pids, target = self._include_params(spec, "_revinclude")
                for target_type, target_rids in frontier.items():
                    if target is not None and target != target_type:
                        continue
                    for rid in self._reverse(target_type, target_rids, pids):
                        if rid not in seen:
                            seen.add(rid)
                            new.setdefault("", []).append(rid)
            added = current_by_rids(self.conn, new.get("", []))
            frontier = {}
            for rid in new.get("", []):
                resource = added.get(rid)
                if resource is not None and not resource.deleted:
                    out.append(resource)
                    frontier.setdefault(resource.resource_type, []).append(rid)
            if not frontier:
                break
        return out

    def _forward(self, rids: list[int], pids: list[int], target: str | None) -> list[int]:
        if not rids or not pids:
            return []
        marks = ", ".join("?" * len(rids))
        sql = (
            "SELECT DISTINCT t.rid FROM ix_reference x JOIN resources t "
            "ON t.type = x.ttype AND t.id = x.tid AND t.deleted = 0 "
            f"WHERE x.rid IN ({marks}) AND x.pid IN ({', '.join(map(str, pids))})"
        )
        args: list[Any] = list(rids)
        if target is not None:
            sql += " AND x.ttype = ?"
            args.append(target)
        return [row[0] for row in self.conn.execute(sql + " ORDER BY t.type, t.id", args)]

    def _reverse(self, target_type: str, rids: list[int], pids: list[int]) -> list[int]:
        if not rids or not pids:
            return []
        marks = ", ".join("?" * len(rids))
        ids = [
            r[0]
            for r in self.conn.execute(f"SELECT id FROM resources WHERE rid IN ({marks})", rids)
        ]
        id_marks = ", ".join("?" * len(ids))
        sql = (
            "SELECT DISTINCT x.rid FROM ix_reference x JOIN resources s ON s.rid = x.rid "
            f"WHERE x.pid IN ({', '.join(map(str, pids))}) AND x.tid IN ({id_marks}) "
            "AND x.ttype = ? AND s.deleted = 0 ORDER BY s.type, s.id"
        )
        return [row[0] for row in self.conn.execute(sql, [*ids, target_type])]


def _replace_json(resource: StoredResource, json_text: str) -> StoredResource:
    return StoredResource(
        resource.resource_type, resource.id, resource.version, resource.deleted,
        resource.last_updated, json_text,
    )  # fmt: skip
