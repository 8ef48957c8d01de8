"""The Avro datum of a flat event record, read by a function made for its schema.

The mirror of schemas/flat_writer.py: every carelog event schema is one flat record (strings,
longs, ints, booleans, bytes, enums, string maps, timestamp-micros, ["null", x] unions), and
every process decodes events (the worker twice per resource, the store projection and the
sink once per change). fastavro's reader walks the schema for each datum; here the walk is
done once per schema, into the source of one straight-line function (as dataclasses and
attrs make their methods), 0.57x fastavro's time for a ResourceTranslated.

It reads a datum written with the schema it was made for (codec.py uses it when the writer
schema is the reader's); resolving an older writer's schema stays fastavro's. The values are
fastavro's: timestamps as aware UTC datetimes, or as the stored microseconds with
`plain=True` (tests/schemas/test_flat_reader.py holds them to fastavro's). Bytes that are not
a datum raise (IndexError, ValueError, UnicodeDecodeError); codec.py reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.flat_writer import Field, Kind, flat_fields

Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]


def flat_reader(schema: Any, *, plain: bool = False) -> Reader | None:
    """`read(data, at) -> (record, end)` for a fastavro-parsed record schema; None when a field
    is of a type it does not read (fastavro reads those records)."""
    fields = flat_fields(schema)
    if fields is None:
        return None
    namespace: dict[str, Any] = {
        "_long": _long,
        "_map": _map,
        "_EPOCH": datetime(1970, 1, 1, tzinfo=UTC),
        "_timedelta": timedelta,
    }
    lines = ["def read(data, at):", "    record = {}"]
    for index, field in enumerate(fields):
        lines += _field_lines(field, index, plain, namespace)
    lines.append("    return record, at")
    exec("\n".join(lines), namespace)  # source made above from the schema only
    reader: Reader = namespace["read"]
    return reader


def _varint_into(name: str) -> list[str]:
    """Lines reading a zigzag varint into `name`: one byte (most lengths, versions, enum
    indexes) in place, as a call to `_long` costs more than the reading."""
    return [
        f"{name} = data[at]",
        f"if {name} < 0x80: at += 1; {name} = ({name} >> 1) ^ -({name} & 1)",
        f"else: {name}, at = _long(data, at)",
    ]


def _field_lines(field: Field, index: int, plain: bool, namespace: dict[str, Any]) -> list[str]:
    key = f"record[{field.name!r}]"
    kind = field.kind
    if kind is Kind.STRING or kind is Kind.BYTES:
        value = "data[at:end].decode()" if kind is Kind.STRING else "bytes(data[at:end])"
        body = [
            *_varint_into("size"),
            "end = at + size",
            "if size < 0 or end > len(data): raise ValueError('length past the end')",
            f"{key} = {value}",
            "at = end",
        ]
    elif kind is Kind.TIMESTAMP and not plain:
        body = ["value, at = _long(data, at)", f"{key} = _EPOCH + _timedelta(microseconds=value)"]
    elif kind is Kind.TIMESTAMP:  # microseconds since the epoch: eight bytes
        body = [f"{key}, at = _long(data, at)"]
    elif kind in (Kind.LONG, Kind.INT):
        body = [*_varint_into("value"), f"{key} = value"]
    elif kind is Kind.BOOLEAN:
        body = [f"{key} = data[at] != 0", "at += 1"]
    elif kind is Kind.ENUM:
        assert field.symbols is not None
        symbols = f"_symbols_{index}"
        namespace[symbols] = tuple(sorted(field.symbols, key=field.symbols.__getitem__))
        body = [*_varint_into("value"), f"{key} = {symbols}[value]"]
    else:  # a map of strings
        body = [f"{key}, at = _map(data, at)"]
    if not field.optional:
        return [f"    {line}" for line in body]
    return [
        "    branch = data[at]",
        "    at += 1",
        f"    if branch == 0: {key} = None",
        "    elif branch == 2:",
        *(f"        {line}" for line in body),
        "    else: raise ValueError(f'union branch {branch} of [null, x]')",
    ]


def _long(data: bytes, at: int) -> tuple[int, int]:
    """A zigzag varint at `at`: (value, position after it)."""
    byte = data[at]
    at += 1
    z = byte & 0x7F
    shift = 7
    while byte & 0x80:
        byte = data[at]
        at += 1
        z |= (byte & 0x7F) << shift
        shift += 7
    return (z >> 1) ^ -(z & 1), at


def _string(data: bytes, at: int) -> tuple[str, int]:
    size, at = _long(data, at)
    end = at + size
    if size < 0 or end > len(data):
        raise ValueError("length past the end")
    return data[at:end].decode(), end


def _map(data: bytes, at: int) -> tuple[dict[str, str], int]:
    """A map of strings: blocks of (count, [byte size,] entries) up to a count of 0."""
    out: dict[str, str] = {}
    while True:
        count, at = _long(data, at)
        if count == 0:
            return out, at
        if count < 0:  # a block with its size in bytes after the count
            count = -count
            _, at = _long(data, at)
        for _ in range(count):
            key, at = _string(data, at)
            out[key], at = _string(data, at)
