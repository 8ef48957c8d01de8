"""One search parameter occurrence turned into SQL over the index tables.

A `Cond` can be used two ways: as the *driver* of the query (a `SELECT DISTINCT rid ...`
read from an index, whose rows are then looked up by primary key), or as a *filter*
(`EXISTS (... AND x.rid = r.rid)`, one primary-key probe per candidate). The query takes
the most selective positive condition as its driver (see `PRIORITY`) and checks the rest
as filters, so a search costs what its best index gives, not a scan of the type.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from projections.fhir_store.definitions import BUILTIN, Registry, SearchParam
from projections.fhir_store.errors import SearchError
from projections.fhir_store.fhir_dates import DateFormatError, date_range
from projections.fhir_store.index_values import normalize, parse_reference
from projections.fhir_store.schema import INDEX_TABLES
from projections.fhir_store.search_limits import MAX_CHAIN_DEPTH
from projections.fhir_store.search_values import (
    number,
    or_values,
    prefixed,
    quantity,
    token,
    unescape,
)

# Lower runs first as the driver: how selective a kind of condition usually is.
PRIORITY = {"_id": 0, "compartment": 1, "reference": 2, "chain": 3, "token": 4, "uri": 4,
            "string:exact": 5, "string": 6, "quantity": 7, "number": 7, "date": 8,
            "_lastUpdated": 9}  # fmt: skip
TOP = "\U0010ffff"  # sorts after every other character: `x >= v AND x < v || TOP` is starts-with


@dataclass
class Cond:
    """SQL for one condition; `{a}` in `filter_sql` stands for the resources alias."""

    priority: int
    filter_sql: str
    args: list[Any] = field(default_factory=list)
    driver_sql: str | None = None  # SELECT DISTINCT rid ... (None: usable as filter only)
    driver_args: list[Any] = field(default_factory=list)

    def filter_for(self, alias: str) -> str:
        return self.filter_sql.replace("{a}", alias)


def _index_cond(
    priority: int,
    table: str,
    pids: Sequence[int],
    where: str,
    args: list[Any],
    negate: bool = False,
) -> Cond:
    pid_sql = f"x.pid = {pids[0]}" if len(pids) == 1 else f"x.pid IN ({', '.join(map(str, pids))})"
    inner = f"FROM {table} x WHERE {pid_sql} AND ({where})"
    exists = f"EXISTS (SELECT 1 {inner} AND x.rid = {{a}}.rid)"
    if negate:
        return Cond(priority, f"NOT {exists}", args)
    return Cond(priority, exists, args, f"SELECT DISTINCT x.rid {inner}", list(args))


def _ors(parts: list[tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
    sql = " OR ".join(f"({p})" for p, _ in parts)
    args = [a for _, part_args in parts for a in part_args]
    return sql, args


def _date_sql(
    prefix: str, low: int, high: int, lo: str = "x.lo", hi: str = "x.hi"
) -> tuple[str, list[Any]]:
    # The redundant `lo` bounds (lo <= hi always) let SQLite range-scan the (pid, lo) index.
    eq = f"{lo} >= ? AND {lo} <= ? AND {hi} <= ?"
    if prefix == "eq":
        return eq, [low, high, high]
    if prefix == "ne":
        return f"NOT ({eq})", [low, high, high]
    if prefix == "gt":
        return f"{hi} > ?", [high]
    if prefix == "lt":
        return f"{lo} < ?", [low]
    if prefix == "ge":
        return f"{hi} > ? OR ({eq})", [high, low, high, high]
    if prefix == "le":
        return f"{lo} <= ? AND ({lo} < ? OR ({eq}))", [high, low, low, high, high]
    if prefix == "sa":
        return f"{lo} > ?", [high]
    if prefix == "eb":
        return f"{lo} < ? AND {hi} < ?", [low, low]
    # ap: the ranges overlap once the search range is widened by 10% of its distance to now
    return f"{hi} >= ? AND {lo} <= ?", [low, high]


def _date_values(param: str, raw: str) -> list[tuple[str, int, int]]:
    out = []
    for value in or_values(param, raw):
        prefix, text = prefixed(param, value)
        try:
            low, high = date_range(text)
        except DateFormatError as exc:
            raise SearchError(param, str(exc)) from None
        if prefix == "ap":
            spread = abs(int(time.time() * 1_000_000) - low) // 10
            low, high = low - spread, high + spread
        out.append((prefix, low, high))
    return out


def _number_sql(param: str, prefix: str, text: str) -> tuple[str, list[Any]]:
    value, low, high = number(param, text)
    if prefix == "eq":
        return "x.value >= ? AND x.value < ?", [low, high]
    if prefix == "ne":
        return "NOT (x.value >= ? AND x.value < ?)", [low, high]
    if prefix in ("gt", "sa"):
        return "x.value > ?", [value]
    if prefix in ("lt", "eb"):
        return "x.value < ?", [value]
    if prefix == "ge":
        return "x.value >= ?", [value]
    if prefix == "le":
        return "x.value <= ?", [value]
    spread = abs(value) / 10  # ap: within 10%
    return "x.value >= ? AND x.value <= ?", [value - spread, value + spread]


def compartment_cond(registry: Registry, resource_type: str, compartment: tuple[str, str]) -> Cond:
    """Resources of `resource_type` in the compartment, e.g. ("Patient", "123")."""
    kind, owner = compartment
    if kind != "Patient":
        raise SearchError("compartment", f"only the Patient compartment is supported, not {kind}")
    names = registry.compartment.get(resource_type, ())
    pids = [
        registry.params(resource_type)[n].pid for n in names if n in registry.params(resource_type)
    ]
    parts, args = [], []
    driver_parts, driver_args = [], []
    if pids:
        pid_list = ", ".join(map(str, pids))
        inner = (
            f"FROM ix_reference x WHERE x.pid IN ({pid_list}) AND x.tid = ? AND x.ttype = 'Patient'"
        )
        parts.append(f"EXISTS (SELECT 1 {inner} AND x.rid = {{a}}.rid)")
        args.append(owner)
        driver_parts.append(f"SELECT x.rid {inner}")
        driver_args.append(owner)
    if resource_type == "Patient":
        parts.append("{a}.id = ?")
        args.append(owner)
        driver_parts.append("SELECT rid FROM resources WHERE type = 'Patient' AND id = ?")
        driver_args.append(owner)
    if not parts:
        return Cond(PRIORITY["compartment"], "0", [], "SELECT rid FROM resources WHERE 0", [])
    return Cond(
        PRIORITY["compartment"], "(" + " OR ".join(parts) + ")", args,
        " UNION ".join(driver_parts), driver_args,
    )  # fmt: skip


class ConditionBuilder:
    """Builds Conds for one resource type's parameters (recursing into chains)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def param(self, resource_type: str, name: str, shown: str) -> SearchParam:
        found = self.registry.params(resource_type).get(name)
        if found is None:
            raise SearchError(shown, f"unknown or unsupported search parameter for {resource_type}")
        return found

    def build(
        self,
        resource_type: str,
        key: str,
        raw: str,
        compartment: tuple[str, str] | None = None,
        depth: int = 0,
    ) -> Cond:
        """The condition `key=raw`; a chain within `compartment` only follows references to
        resources in that compartment (it must not probe anyone else's data)."""
        head, _, chained = key.partition(".")
        name, _, modifier = head.partition(":")
        if name in BUILTIN and not chained:
            return self._builtin(resource_type, name, modifier, key, raw)
        param = self.param(resource_type, name, key)
        if chained:
            return self._chain(param, modifier, chained, key, raw, compartment, depth)
        if modifier == "missing":
            if raw not in ("true", "false"):
                raise SearchError(key, ":missing takes true or false")
            table = INDEX_TABLES[param.kind][0]
            exists = (
                f"EXISTS (SELECT 1 FROM {table} x WHERE x.rid = {{a}}.rid AND x.pid = {param.pid})"
            )
            return Cond(10, f"NOT {exists}" if raw == "true" else exists)
        handler = getattr(self, f"_{param.kind}")
        cond: Cond = handler(param, modifier, key, raw)
        return cond

    def _builtin(self, resource_type: str, name: str, modifier: str, key: str, raw: str) -> Cond:
        if modifier:
            raise SearchError(key, f"modifier :{modifier} is not supported on {name}")
        if name == "_id":
            ids = [unescape(v) for v in or_values(key, raw)]
            marks = ", ".join("?" * len(ids))
            return Cond(
                PRIORITY["_id"], f"{{a}}.id IN ({marks})", ids,
                f"SELECT rid FROM resources WHERE type = ? AND id IN ({marks})", [resource_type, *ids],
            )  # fmt: skip
        parts = [_date_sql(p, lo, hi, "{a}.lu", "{a}.lu") for p, lo, hi in _date_values(key, raw)]
        sql, args = _ors(parts)
        driver_parts = [_date_sql(p, lo, hi, "lu", "lu") for p, lo, hi in _date_values(key, raw)]
        dsql, dargs = _ors(driver_parts)
        return Cond(
            PRIORITY["_lastUpdated"], f"({sql})", args,
            f"SELECT rid FROM resources WHERE type = ? AND ({dsql})", [resource_type, *dargs],
        )  # fmt: skip

    def _string(self, param: SearchParam, modifier: str, key: str, raw: str) -> Cond:
        parts = []
        for value in or_values(key, raw):
            text = unescape(value)
            norm = normalize(text)
            if modifier == "":
                parts.append(("x.norm >= ? AND x.norm < ?", [norm, norm + TOP]))
            elif modifier == "exact":
                parts.append(("x.norm = ? AND x.exact = ?", [norm, text]))
            elif modifier == "contains":
                like = norm.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                parts.append(("x.norm LIKE ? ESCAPE '\\'", [f"%{like}%"]))
            else:
                raise SearchError(
                    key, f"modifier :{modifier} is not supported on string parameters"
                )
        sql, args = _ors(parts)
        priority = PRIORITY["string:exact" if modifier == "exact" else "string"]
        return _index_cond(priority, "ix_string", [param.pid], sql, args)

    def _token(self, param: SearchParam, modifier: str, key: str, raw: str) -> Cond:
        if modifier not in ("", "not", "text"):
            raise SearchError(key, f"modifier :{modifier} is not supported on token parameters")
        parts: list[tuple[str, list[Any]]] = []
        for value in or_values(key, raw):
            if modifier == "text":
                norm = normalize(unescape(value))
                parts.append(("x.text >= ? AND x.text < ?", [norm, norm + TOP]))
                continue
            system, code = token(value)
            if system is None:
                parts.append(("x.code = ?", [code]))
            elif code is None:
                parts.append(("x.system = ?", [system]))
            else:
                parts.append(("x.code = ? AND x.system = ?", [code, system]))
        sql, args = _ors(parts)
        return _index_cond(PRIORITY["token"], "ix_token", [param.pid], sql, args, modifier == "not")

    def _uri(self, param: SearchParam, modifier: str, key: str, raw: str) -> Cond:
        parts = []
        for value in or_values(key, raw):
            uri = unescape(value)
            if modifier == "":
                parts.append(("x.uri = ?", [uri]))
            elif modifier == "below":
                parts.append(("x.uri >= ? AND x.uri < ?", [uri, uri + TOP]))
            elif modifier == "above":
                parts.append(("? >= x.uri AND substr(?, 1, length(x.uri)) = x.uri", [uri, uri]))
            else:
                raise SearchError(key, f"modifier :{modifier} is not supported on uri parameters")
        sql, args = _ors(parts)
        return _index_cond(PRIORITY["uri"], "ix_uri", [param.pid], sql, args)

    def _date(self, param: SearchParam, modifier: str, key: str, raw: str) -> Cond:
        if modifier:
            raise SearchError(key, f"modifier :{modifier} is not supported on date parameters")
        sql, args = _ors([_date_sql(p, lo, hi) for p, lo, hi in _date_values(key, raw)])
        return _index_cond(PRIORITY["date"], "ix_date", [param.pid], sql, args)

    def _number(self, param: SearchParam, modifier: str, key: str, raw: str) -> Cond:
        if modifier:
            raise SearchError(key, f"modifier :{modifier} is not supported on number parameters")
        parts = [_number_sql(key, *prefixed(key, v)) for v in or_values(key, raw)]
        sql, args = _ors(parts)
        return _index_cond(PRIORITY["number"], "ix_number", [param.pid], sql, args)

    def _quantity(self, param: SearchParam, modifier: str, key: str, raw: str) -> Cond:
        if modifier:
            raise SearchError(key, f"modifier :{modifier} is not supported on quantity parameters")
        parts = []
        for value in or_values(key, raw):
            prefix, text, system, code = quantity(key, value)
            sql, args = _number_sql(key, prefix, text)
            if system is not None and code is not None:
                sql, args = f"({sql}) AND x.system = ? AND x.code = ?", [*args, system, code]
            elif system is not None:
                sql, args = f"({sql}) AND x.system = ?", [*args, system]
            elif code is not None:
                sql, args = f"({sql}) AND (x.code = ? OR x.unit = ?)", [*args, code, code]
            parts.append((sql, args))
        sql, args = _ors(parts)
        return _index_cond(PRIORITY["quantity"], "ix_number", [param.pid], sql, args)

    def _reference(self, param: SearchParam, modifier: str, key: str, raw: str) -> Cond:
        if modifier and modifier not in param.targets:
            raise SearchError(key, f":{modifier} is not a target type of {param.base}.{param.name}")
        parts = []
        for value in or_values(key, raw):
            text = unescape(value)
            target_type, target_id = parse_reference(text)
            if target_type:
                if modifier and modifier != target_type:
                    raise SearchError(key, f"{text!r} is not a {modifier}")
                parts.append(("x.tid = ? AND x.ttype = ?", [target_id, target_type]))
            elif "/" in text or ":" in text:  # a canonical or other URL: match it as given
                parts.append(("x.url = ?", [text]))
            elif modifier:
                parts.append(("x.tid = ? AND x.ttype = ?", [text, modifier]))
            else:
                parts.append(("x.tid = ?", [text]))
        sql, args = _ors(parts)
        return _index_cond(PRIORITY["reference"], "ix_reference", [param.pid], sql, args)

    def _chain(
        self, param: SearchParam, modifier: str, chained: str, key: str, raw: str,
        compartment: tuple[str, str] | None, depth: int,
    ) -> Cond:  # fmt: skip
        if param.kind != "reference":
            raise SearchError(key, f"{param.name} is not a reference: it cannot be chained")
        if depth >= MAX_CHAIN_DEPTH:
            raise SearchError(key, f"chains are limited to {MAX_CHAIN_DEPTH} links")
        chained_name = chained.split(".", 1)[0].split(":", 1)[0]
        if modifier:
            if modifier not in param.targets:
                raise SearchError(
                    key, f":{modifier} is not a target type of {param.base}.{param.name}"
                )
            targets = [modifier]
        else:
            targets = [
                t for t in param.targets
                if chained_name in self.registry.params(t) or chained_name in BUILTIN
            ]  # fmt: skip
        if not targets:
            raise SearchError(key, f"no target of {param.name} has a parameter {chained_name!r}")
        parts = []
        for target in targets:
            inner = self.build(target, chained, raw, compartment, depth + 1)
            within, within_args = "", []
            if compartment is not None:
                limit = compartment_cond(self.registry, target, compartment)
                within, within_args = f" AND {limit.filter_for('t')}", limit.args
            if inner.driver_sql is not None:
                ids = (
                    f"SELECT t.id FROM ({inner.driver_sql}) d CROSS JOIN resources t "
                    f"ON t.rid = d.rid WHERE t.type = ? AND t.deleted = 0{within}"
                )
                ids_args = [*inner.driver_args, target, *within_args]
            else:
                ids = (
                    "SELECT t.id FROM resources t WHERE t.type = ? AND t.deleted = 0 AND "
                    f"{inner.filter_for('t')}{within}"
                )
                ids_args = [target, *inner.args, *within_args]
            parts.append((f"x.ttype = ? AND x.tid IN ({ids})", [target, *ids_args]))
        sql, args = _ors(parts)
        return _index_cond(PRIORITY["chain"], "ix_reference", [param.pid], sql, args)
