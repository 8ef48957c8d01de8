"""The Avro datum of a flat event record, read by a loop over its schema's fields.

The mirror of schemas/flat_writer.py: every carelog event schema is one flat record (strings,
longs, ints, booleans, bytes, enums, string maps, timestamp-micros, ["null", x] unions), and
every process decodes events (the worker twice per resource, the store projection and the
sink once per change). fastavro's reader walks the schema for each datum; here the walk is
done once per schema, into a list of steps that `FlatReader` loops over. This module is
compiled (infra/native_build.py): a ResourceChanged is read in 1.9 us, 1.1 with plain
timestamps, where a Python function made from the schema's source (exec) took 3.9 and 2.7.
The record's keys are the field names interned: the event class's __init__ matches a
keyword by identity before it compares strings, which made `from_record` 2.5x slower
with keys that were equal but not the same objects (docs/figures.md).

It reads a datum written with the schema it was made for (codec.py uses it when the writer
schema is the reader's); resolving an older writer's schema stays fastavro's. The values are
fastavro's: timestamps as aware UTC datetimes, or as the stored microseconds with
`plain=True` (tests/schemas/test_flat_reader.py holds them to fastavro's). Bytes that are not
a datum raise (IndexError, ValueError, UnicodeDecodeError); codec.py reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

from schemas.flat_writer import (
    BOOLEAN,
    BYTES,
    CODES,
    ENUM,
    EPOCH,
    INT,
    LONG,
    STRING,
    TIMESTAMP,
    Field,
    Kind,
    Step,
    flat_fields,
)

Reader = Callable[[bytes, int], tuple[dict[str, Any], int]]

# A timestamp kept as its microseconds (plain), beside the kinds both loops share.
_MICROS: Final = 8


class FlatReader:
    """`reader(data, at) -> (record, end)`: a loop over the schema's fields, read once."""

    def __init__(self, fields: tuple[Field, ...], plain: bool) -> None:
        self.steps: list[Step] = [
            Step(f, _MICROS if plain and f.kind is Kind.TIMESTAMP else CODES[f.kind])
            for f in fields
        ]

    def __call__(self, data: bytes, at: int) -> tuple[dict[str, Any], int]:
        record: dict[str, Any] = {}
        for step in self.steps:
            if step.optional:
                branch = data[at]
                at += 1
                if branch == 0:
                    record[step.name] = None
                    continue
                if branch != 2:
                    raise ValueError(f"union branch {branch} of [null, x]")
            kind = step.kind
            if kind in (STRING, BYTES):
                size, at = _long(data, at)
                end = at + size
                if size < 0 or end > len(data):
                    raise ValueError("length past the end")
                if kind == STRING:
                    record[step.name] = data[at:end].decode()
                else:
                    record[step.name] = data[at:end]
                at = end
            elif kind in (LONG, INT, _MICROS):
                value, at = _long(data, at)
                record[step.name] = value
            elif kind == TIMESTAMP:
                value, at = _long(data, at)
                # timedelta(days, seconds, microseconds): positional, cheaper than keywords
                record[step.name] = EPOCH + timedelta(0, 0, value)
            elif kind == ENUM:
                value, at = _long(data, at)
                record[step.name] = step.by_index[value]
            elif kind == BOOLEAN:
                record[step.name] = data[at] != 0
                at += 1
            else:
                record[step.name], at = _map(data, at)
        return record, at


def flat_reader(schema: Any, *, plain: bool = False) -> Reader | None:
    """`read(data, at) -> (record, end)` for a fastavro-parsed record schema; None when a field
    is of a type it does not read (fastavro reads those records)."""
    fields = flat_fields(schema)
    if fields is None:
        return None
    return FlatReader(fields, plain)


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
