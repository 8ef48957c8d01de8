"""The Avro datum of a flat event record, written without fastavro's per-datum schema walk.

fastavro's schemaless writer walks the schema for every datum and picks each union's branch
by validating the value; the worker writes some thirty events per ORU^R01. Every carelog
event schema is one flat record of strings, longs, ints, booleans, bytes, enums, string
maps, timestamp-micros and ["null", x] unions: `flat_writer` reads such a schema once into
a list of steps, and `FlatWriter.write` loops over them. This module is compiled
(infra/native_build.py), so the loop and its branches on small ints run as C: a
ResourceChanged written in 2.6 us, where fastavro took 9.7 and a Python function made from
the schema's source (exec) 4.0 (docs/figures.md). schemas/flat_reader.py reads the same way.

Only the plain case is written here: each value of the exact type its field expects (a str
for a string, an int in range for a long, an aware datetime or an int for a timestamp, a
dict of str for a map). Anything else raises `NotFlat` and schemas/codec.py lets fastavro
write it, so the bytes and the errors stay fastavro's (tests/schemas/test_flat_writer.py
holds the bytes to fastavro's).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Final, NamedTuple

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
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


# A field's kind as the loops of this module and schemas/flat_reader.py tell them apart:
# small ints compare in C when compiled.
STRING: Final = 0
BYTES: Final = 1
LONG: Final = 2
INT: Final = 3
BOOLEAN: Final = 4
TIMESTAMP: Final = 5
ENUM: Final = 6
MAP: Final = 7
CODES: Final = {Kind.STRING: STRING, Kind.BYTES: BYTES, Kind.LONG: LONG, Kind.INT: INT,
                Kind.BOOLEAN: BOOLEAN, Kind.TIMESTAMP: TIMESTAMP, Kind.ENUM: ENUM,
                Kind.MAP: MAP}  # fmt: skip


class Step:
    """One field of a schema, as the loops of FlatWriter and schemas/flat_reader.py take it
    (`kind` is one of the codes above, or a reader's own)."""

    def __init__(self, field: Field, kind: int) -> None:
        self.name: str = sys.intern(field.name)  # a dict finds an interned key by identity
        self.optional: bool = field.optional
        self.kind: int = kind
        self.symbols: dict[str, int] = field.symbols or {}  # symbol -> index, to write
        # index -> symbol, to read
        self.by_index: tuple[str, ...] = tuple(sorted(self.symbols, key=self.symbols.__getitem__))


class FlatWriter:
    """`write(record) -> bytes`: a loop over the schema's fields, read once. Raises NotFlat
    (or KeyError for a missing field, UnicodeError) for what only fastavro writes."""

    def __init__(self, fields: tuple[Field, ...]) -> None:
        self.steps: list[Step] = [Step(f, CODES[f.kind]) for f in fields]

    def write(self, record: dict[str, Any]) -> bytes:
        out = bytearray()
        for step in self.steps:
            value = record[step.name]
            if step.optional:
                if value is None:
                    out.append(0)
                    continue
                out.append(2)  # branch 1, zigzag
            kind = step.kind
            if kind == STRING:
                if type(value) is not str:
                    raise NotFlat(f"{step.name}: not str")
                _bytes(value.encode(), out)
            elif kind == BYTES:
                if type(value) is not bytes:
                    raise NotFlat(f"{step.name}: not bytes")
                _bytes(value, out)
            elif kind in (LONG, TIMESTAMP):
                if kind == TIMESTAMP and type(value) is datetime and value.tzinfo is not None:
                    delta = value - EPOCH  # as fastavro counts it, in whole microseconds
                    value = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
                if type(value) is not int or not _LONG_MIN <= value < _LONG_END:
                    raise NotFlat(f"{step.name}: not a long")
                _varint((value << 1) ^ (value >> 63), out)
            elif kind == INT:
                if type(value) is not int or not _INT_MIN <= value < _INT_END:
                    raise NotFlat(f"{step.name}: not an int")
                _varint((value << 1) ^ (value >> 63), out)
            elif kind == ENUM:
                index = step.symbols.get(value) if isinstance(value, str) else None
                if index is None:
                    raise NotFlat(f"{step.name}: not one of its symbols")
                _varint(index << 1, out)
            elif kind == BOOLEAN:
                if type(value) is not bool:
                    raise NotFlat(f"{step.name}: not a bool")
                out.append(1 if value else 0)
            else:
                _map(step.name, value, out)
        return bytes(out)


def flat_writer(schema: Any) -> FlatWriter | None:
    """The writer of a fastavro-parsed record schema; None when a field is of a type it does
    not write (fastavro writes those records)."""
    fields = flat_fields(schema)
    if fields is None:
        return None
    return FlatWriter(fields)


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
