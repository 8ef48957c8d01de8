"""The Avro datum of a flat event record, written without fastavro's per-datum schema walk.

fastavro's schemaless writer walks the schema for every datum and picks each union's branch
by validating the value; the worker writes some thirty events per ORU^R01. Every carelog
event schema is one flat record of strings, longs, ints, booleans, bytes, enums, string
maps, timestamp-micros and ["null", x] unions: `flat_writer` reads such a schema once into
a tuple of fields and makes the source of one straight-line function over them (Avro
encode of a ResourceTranslated: fastavro 9.7 us, a loop over the fields 6.3-6.5 us, the
function made for the schema 4.8 us). schemas/flat_reader.py reads the same way.

Only the plain case is written here: each value of the exact type its field expects (a str
for a string, an int in range for a long, an aware datetime or an int for a timestamp, a
dict of str for a map). Anything else raises `NotFlat` and schemas/codec.py lets fastavro
write it, so the bytes and the errors stay fastavro's (tests/schemas/test_flat_writer.py
holds the bytes to fastavro's).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LONG_MIN, _LONG_END = -(2**63), 2**63
_INT_MIN, _INT_END = -(2**31), 2**31


class Kind(Enum):
    STRING = "string"
    BYTES = "bytes"
    LONG = "long"
    INT = "int"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp-micros"
    ENUM = "enum"
    MAP = "map"  # of strings


class NotFlat(ValueError):
    """A value this writer does not write: fastavro will, or will say why not."""


class Field(NamedTuple):
    name: str
    optional: bool  # ["null", kind]
    kind: Kind
    symbols: dict[str, int] | None = None  # an enum's: symbol -> index


@dataclass(frozen=True, slots=True)
class FlatWriter:
    """`write(record) -> bytes`: one straight-line function made from the schema's fields
    (as dataclasses and attrs make their methods), no per-field dispatch at write time.
    Raises NotFlat (or KeyError for a missing field, TypeError, UnicodeError) for what only
    fastavro writes."""

    write: Callable[[dict[str, Any]], bytes]


def _writer_source(fields: tuple[Field, ...], namespace: dict[str, Any]) -> str:
    lines = ["def write(record):", "    out = bytearray()"]
    for index, (name, optional, kind, symbols) in enumerate(fields):
        body: list[str]
        if kind is Kind.STRING or kind is Kind.BYTES:
            plain_type = "str" if kind is Kind.STRING else "bytes"
            body = [
                f"if type(value) is not {plain_type}: raise NotFlat({name + ': not ' + plain_type!r})",
                "data = value.encode()" if kind is Kind.STRING else "data = value",
                "size = len(data) << 1",
                "if size < 0x80: out.append(size)",  # most values: a one-byte length
                "else: _varint(size, out)",
                "out += data",
            ]
        elif kind is Kind.LONG or kind is Kind.TIMESTAMP:
            body = []
            if kind is Kind.TIMESTAMP:
                body += [
                    "if type(value) is datetime and value.tzinfo is not None:",
                    "    delta = value - _EPOCH",  # as fastavro counts it, in whole microseconds
                    "    value = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds",
                ]
            body += [
                "if type(value) is not int or not _LONG_MIN <= value < _LONG_END:",
                f"    raise NotFlat({name + ': not a long'!r})",
                "_varint((value << 1) ^ (value >> 63), out)",
            ]
        elif kind is Kind.INT:
            body = [
                "if type(value) is not int or not _INT_MIN <= value < _INT_END:",
                f"    raise NotFlat({name + ': not an int'!r})",
                "_varint((value << 1) ^ (value >> 63), out)",
            ]
        elif kind is Kind.ENUM:
            namespace[f"_symbols_{index}"] = symbols
            body = [
                f"index = _symbols_{index}.get(value) if isinstance(value, str) else None",
                f"if index is None: raise NotFlat({name + ': not one of its symbols'!r})",
                "_varint(index << 1, out)",
            ]
        elif kind is Kind.BOOLEAN:
            body = [
                f"if type(value) is not bool: raise NotFlat({name + ': not a bool'!r})",
                "out.append(1 if value else 0)",
            ]
        else:  # a map of strings
            body = [f"_map({name!r}, value, out)"]
        lines.append(f"    value = record[{name!r}]")
        if optional:
            lines += ["    if value is None: out.append(0)", "    else:", "        out.append(2)"]
            lines += [f"        {line}" for line in body]  # branch 1, zigzag
        else:
            lines += [f"    {line}" for line in body]
    lines.append("    return bytes(out)")
    return "\n".join(lines)


def flat_writer(schema: Any) -> FlatWriter | None:
    """The writer of a fastavro-parsed record schema; None when a field is of a type it does
    not write (fastavro writes those records)."""
    fields = flat_fields(schema)
    if fields is None:
        return None
    namespace: dict[str, Any] = {
        "NotFlat": NotFlat, "datetime": datetime, "_EPOCH": _EPOCH, "_varint": _varint,
        "_map": _map, "_LONG_MIN": _LONG_MIN, "_LONG_END": _LONG_END, "_INT_MIN": _INT_MIN,
        "_INT_END": _INT_END,
    }  # fmt: skip
    exec(_writer_source(fields, namespace), namespace)  # source made from the schema only
    return FlatWriter(namespace["write"])


def flat_fields(schema: Any) -> tuple[Field, ...] | None:
    """The fields of a fastavro-parsed flat record schema (see above); None if it is not one.
    schemas/flat_reader.py reads what this module writes from the same fields."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    fields = []
    for spec in schema["fields"]:
        kind, optional = spec["type"], False
        if isinstance(kind, list):
            if len(kind) != 2 or kind[0] != "null":
                return None
            kind, optional = kind[1], True
        field = _field(spec["name"], optional, kind)
        if field is None:
            return None
        fields.append(field)
    return tuple(fields)


_PRIMITIVES = {k.value: k for k in (Kind.STRING, Kind.BYTES, Kind.LONG, Kind.INT, Kind.BOOLEAN)}


def _field(name: str, optional: bool, kind: Any) -> Field | None:
    if isinstance(kind, str):
        return Field(name, optional, _PRIMITIVES[kind]) if kind in _PRIMITIVES else None
    if not isinstance(kind, dict):
        return None
    logical, base = kind.get("logicalType"), kind.get("type")
    if logical == "timestamp-micros" and base == "long":
        return Field(name, optional, Kind.TIMESTAMP)
    if logical is not None:
        return None
    if base == "enum":
        return Field(name, optional, Kind.ENUM, {s: i for i, s in enumerate(kind["symbols"])})
    if base == "map" and kind.get("values") == "string":
        return Field(name, optional, Kind.MAP)
    return None


def _varint(z: int, out: bytearray) -> None:
    if z < 0x80:  # one byte: most
        out.append(z)
        return
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)


def _bytes(data: bytes, out: bytearray) -> None:
    size = len(data) << 1
    if size < 0x80:  # most strings: a one-byte length
        out.append(size)
    else:
        _varint(size, out)
    out += data


def _map(name: str, value: Any, out: bytearray) -> None:
    if type(value) is not dict:
        raise NotFlat(f"{name}: not a dict")
    if value:
        _varint(len(value) << 1, out)
        for key, item in value.items():
            if type(key) is not str or type(item) is not str:
                raise NotFlat(f"{name}: not a map of strings")
            _bytes(key.encode(), out)
            _bytes(item.encode(), out)
    out.append(0)
