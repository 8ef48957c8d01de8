"""SQL-on-FHIR v2 ViewDefinitions: loading them and flattening resources into columns.

A view is evaluated as the specification says: `where` filters resources, sibling `select`s
are cross-joined, `forEach` yields a row per item (none when there is no item),
`forEachOrNull` a row of nulls when there is no item, `repeat` a row per item reached by
applying its paths again and again (depth first), `unionAll` concatenates; %rowIndex is the
item's position in its forEach/repeat. Paths are compiled once by the FHIRPath engine
(projections/fhirpath). Each column gets an Arrow type from its FHIR
`type`; date and dateTime stay strings because FHIR keeps their precision ("1980" is not
1980-01-01), instants become UTC timestamps.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from projections.fhirpath import (
    CompiledPath,
    Env,
    FHIRPathEvaluationError,
    FHIRPathSyntaxError,
    compile_path,
)
from projections.lake.errors import ViewDefinitionError, ViewEvaluationError

SHIPPED_VIEWS = Path(__file__).resolve().parent / "views"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")  # a view's name: its silver table's
_COLUMN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # the specification's column names

_ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "integer": pa.int64(),
    "positiveInt": pa.int64(),
    "unsignedInt": pa.int64(),
    "integer64": pa.int64(),
    "decimal": pa.float64(),
    "instant": pa.timestamp("us", "UTC"),
}
# Columns the sink adds to every silver table: which resource and version a row comes from.
SYSTEM_FIELDS: tuple[pa.Field, ...] = (
    pa.field("_resource_id", pa.string(), nullable=False),
    pa.field("_version", pa.int64(), nullable=False),
    pa.field("_last_updated", pa.timestamp("us", "UTC")),
)


@dataclass(frozen=True)
class Column:
    name: str
    path: CompiledPath
    fhir_type: str
    collection: bool

    @property
    def arrow_type(self) -> pa.DataType:
        scalar = _ARROW_TYPES.get(self.fhir_type, pa.string())
        return pa.list_(scalar) if self.collection else scalar


@dataclass(frozen=True)
class Select:
    columns: tuple[Column, ...]
    for_each: CompiledPath | None
    or_null: bool
    repeat: tuple[CompiledPath, ...]  # from the node the select runs on
    repeat_again: tuple[CompiledPath, ...]  # the same paths, from an item they reached
    indexed: bool  # a path below reads %rowIndex: each item gets its own variables
    selects: tuple[Select, ...]
    union_all: tuple[Select, ...]

    def names(self) -> list[str]:
        out = [c.name for c in self.columns]
        for sub in self.selects:
            out += sub.names()
        if self.union_all:
            out += self.union_all[0].names()
        return out

    def all_columns(self) -> Iterator[Column]:
        yield from self.columns
        for sub in self.selects:
            yield from sub.all_columns()
        if self.union_all:
            yield from self.union_all[0].all_columns()


@dataclass(frozen=True)
class View:
    """One ViewDefinition, ready to flatten resources of its type into rows."""

    name: str  # also the silver table's name
    resource: str
    root: Select
    where: tuple[CompiledPath, ...]
    fingerprint: str  # of the definition, to notice a changed view
    source: str

    @property
    def columns(self) -> list[Column]:
        return list(self.root.all_columns())

    @property
    def schema(self) -> pa.Schema:
        fields = [pa.field(c.name, c.arrow_type) for c in self.columns]
        return pa.schema([*fields, *SYSTEM_FIELDS])

    def rows(self, resource: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows of one resource (none when a `where` is not true)."""
        env = {"rowIndex": 0, "resource": resource}
        try:
            for test in self.where:
                got = test(resource, env)
                if got == [True]:
                    continue
                if got and (len(got) != 1 or type(got[0]) is not bool):
                    raise ViewEvaluationError(
                        f"where {test.expression!r} gives {got!r}, not a boolean"
                    )
                return []
            return _select_rows(self.root, resource, env)
        except FHIRPathEvaluationError as exc:
            raise ViewEvaluationError(str(exc)) from exc


def _cross(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if len(right) == 1:
        extra = right[0]
        return [{**row, **extra} for row in left]
    return [{**a, **b} for a in left for b in right]


def _column_rows(select: Select, node: Any, env: Env) -> list[dict[str, Any]]:
    row: dict[str, Any] = {}
    for col in select.columns:
        values = col.path.evaluate(node, env)  # the hot loop: skip a call layer
        if col.collection:
            row[col.name] = values
        elif not values:
            row[col.name] = None
        elif len(values) == 1:
            row[col.name] = values[0]
        else:
            raise ViewEvaluationError(
                f"column {col.name} ({col.path.expression}) has {len(values)} values; "
                "set collection: true or narrow the path (first(), where())"
            )
    rows = [row]
    for sub in select.selects:
        rows = _cross(rows, _select_rows(sub, node, env))
        if not rows:
            return rows
    if select.union_all:
        union: list[dict[str, Any]] = []
        for option in select.union_all:
            union += _select_rows(option, node, env)
        rows = _cross(rows, union)
    return rows


def _repeated(
    paths: tuple[CompiledPath, ...], again: tuple[CompiledPath, ...], node: Any, env: Env
) -> list[Any]:
    """The items the paths reach from `node`, again from each of those, depth first."""
    out: list[Any] = []
    for path in paths:
        for item in path(node, env):
            out.append(item)
            out += _repeated(again, again, item, env)
    return out


def _select_rows(select: Select, node: Any, env: Env) -> list[dict[str, Any]]:
    if select.for_each is None and not select.repeat:
        return _column_rows(select, node, env)
    if select.repeat:
        items = _repeated(select.repeat, select.repeat_again, node, env)
    else:
        items = select.for_each(node, env)  # type: ignore[misc]
    if not items:
        if not select.or_null:
            return []
        row = dict.fromkeys(select.names())
        for col in select.columns:  # on the row of nulls, %rowIndex is 0
            if "%rowIndex" in col.path.expression:
                values = col.path({}, {**env, "rowIndex": 0})
                row[col.name] = values[0] if len(values) == 1 else None
        return [row]
    rows: list[dict[str, Any]] = []
    if not select.indexed:
        for item in items:
            rows += _column_rows(select, item, env)
        return rows
    for index, item in enumerate(items):
        rows += _column_rows(select, item, {**env, "rowIndex": index})
    return rows


def _constants(definition: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for const in definition.get("constant", []):
        values = [v for k, v in const.items() if k.startswith("value")]
        if "name" not in const or len(values) != 1:
            raise ViewDefinitionError(f"constant {const!r} needs a name and one value[x]")
        out[const["name"]] = values[0]
    return out


def _path(
    expression: Any, context: str | None, constants: dict[str, Any], where: str
) -> CompiledPath:
    if not isinstance(expression, str) or not expression.strip():
        raise ViewDefinitionError(f"{where}: path {expression!r} is not a FHIRPath expression")
    try:
        return compile_path(expression, context, constants)
    except FHIRPathSyntaxError as exc:
        raise ViewDefinitionError(f"{where}: {exc}") from exc


def _parse_select(
    spec: dict[str, Any], context: str | None, constants: dict[str, Any], where: str
) -> Select:
    path = spec.get("forEach") or spec.get("forEachOrNull")
    if sum(1 for k in ("forEach", "forEachOrNull", "repeat") if spec.get(k)) > 1:
        raise ViewDefinitionError(f"{where}: only one of forEach, forEachOrNull and repeat")
    for_each = _path(path, context, constants, where) if path else None
    repeat_spec = spec.get("repeat") or []
    if not isinstance(repeat_spec, list):
        raise ViewDefinitionError(f"{where}: repeat must be a list of paths")
    repeat = tuple(_path(p, context, constants, where) for p in repeat_spec)
    inner = for_each.result_context if for_each else context
    if repeat:  # the items reached must be of one type for the columns' paths to compile
        reached = {r.result_context for r in repeat}
        inner = reached.pop() if len(reached) == 1 else None
    again = tuple(_path(p, inner, constants, where) for p in repeat_spec)
    columns = []
    for col in spec.get("column", []):
        name = col.get("name")
        if not isinstance(name, str) or not _COLUMN.match(name):
            raise ViewDefinitionError(
                f"{where}: column name {name!r} must be letters, digits and _ (not first)"
            )
        if "path" not in col:
            raise ViewDefinitionError(f"{where}: column {name} has no path")
        columns.append(
            Column(
                name=name,
                path=_path(col["path"], inner, constants, where),
                fhir_type=col.get("type", "string"),
                collection=bool(col.get("collection", False)),
            )
        )
    selects = tuple(_parse_select(s, inner, constants, where) for s in spec.get("select", []))
    union = tuple(_parse_select(s, inner, constants, where) for s in spec.get("unionAll", []))
    or_null = bool(spec.get("forEachOrNull"))
    indexed = b"%rowIndex" in orjson.dumps(spec)
    result = Select(tuple(columns), for_each, or_null, repeat, again, indexed, selects, union)
    if union and len({tuple(u.names()) for u in union}) != 1:
        raise ViewDefinitionError(f"{where}: unionAll branches must have the same columns")
    return result


def _table_name(definition: dict[str, Any], source: str) -> str:
    """The view's name, else one derived from its file or its resource type (both optional)."""
    name = definition.get("name")
    if name is None:
        stem = Path(source).stem if source.endswith(".json") else ""
        base = stem or str(definition.get("resource", "view"))
        name = re.sub(r"[^a-z0-9_]", "_", re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower())
        return name if _NAME.match(name) else f"view_{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ViewDefinitionError(f"{source}: name {name!r} must be lower-case letters, digits, _")
    return name


def parse_view(definition: dict[str, Any], source: str = "<memory>") -> View:
    """A View from a ViewDefinition resource (JSON already parsed)."""
    if definition.get("resourceType", "ViewDefinition") != "ViewDefinition":
        raise ViewDefinitionError(f"{source}: resourceType is not ViewDefinition")
    resource = definition.get("resource")
    if not isinstance(resource, str) or not resource[:1].isupper():
        raise ViewDefinitionError(f"{source}: resource {resource!r} is not a FHIR resource type")
    name = _table_name(definition, source)
    constants = _constants(definition)
    root = _parse_select({"select": definition.get("select", [])}, resource, constants, source)
    names = root.names()
    if len(names) != len(set(names)):
        raise ViewDefinitionError(f"{source}: duplicate column names in {names}")
    where = tuple(
        _path(w.get("path"), resource, constants, source) for w in definition.get("where", [])
    )
    canonical = orjson.dumps(definition, option=orjson.OPT_SORT_KEYS)
    return View(name, resource, root, where, hashlib.sha256(canonical).hexdigest()[:16], source)


def load_view(path: Path) -> View:
    try:
        definition = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ViewDefinitionError(f"{path}: not JSON: {exc}") from exc
    return parse_view(definition, str(path))


def load_views(*folders: Path | None) -> list[View]:
    """Views from the folders in order; a later view replaces an earlier one of the same name."""
    views: dict[str, View] = {}
    for folder in folders:
        if folder is None:
            continue
        if not folder.is_dir():
            raise ViewDefinitionError(
                f"views folder {folder} does not exist (CARELOG_LAKE_VIEWS_DIR)"
            )
        for path in sorted(folder.glob("*.json")):
            view = load_view(path)
            views[view.name] = view
    return list(views.values())


def to_arrow(view: View, rows: Iterable[dict[str, Any]], system: dict[str, list[Any]]) -> pa.Table:
    """Rows of a view plus the system columns as one Arrow table of the view's schema."""
    rows = list(rows)
    arrays = [_array([r[c.name] for r in rows], c) for c in view.columns]
    arrays += [pa.array(system[f.name], f.type) for f in SYSTEM_FIELDS]
    return pa.Table.from_arrays(arrays, schema=view.schema)


def _array(values: list[Any], col: Column) -> pa.Array:
    target = col.arrow_type
    try:
        if col.fhir_type == "instant":
            return pa.array(values, pa.string()).cast(target)
        return pa.array(values, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        return pa.array([_coerce(v, col) for v in values], target)


def _coerce(value: Any, col: Column) -> Any:
    if value is None:
        return None
    if col.collection:
        return [_scalar(v, col.fhir_type) for v in value]
    return _scalar(value, col.fhir_type)


def _scalar(value: Any, fhir_type: str) -> Any:
    """A value that does not fit its column's type: converted, else null (logged by no one)."""
    kind = _ARROW_TYPES.get(fhir_type, pa.string())
    if kind == pa.string():
        if isinstance(value, (dict, list)):
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if fhir_type == "instant":
        from datetime import datetime

        try:
            return datetime.fromisoformat(str(value))
        except ValueError:
            return None
    try:
        return {pa.bool_(): bool, pa.int64(): int, pa.float64(): float}[kind](value)
    except (TypeError, ValueError, KeyError):
        return None
