"""The flat reader reads exactly what fastavro reads, and what is no datum raises."""

from __future__ import annotations

import sys
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader
from hypothesis import given
from hypothesis import strategies as st

from schemas.catalogue import SchemaVersion, default_catalogue
from schemas.codec import HEADER_SIZE, AvroCodec, _plain, encode_with
from schemas.errors import CorruptEvent
from schemas.events import to_record
from schemas.flat_reader import flat_reader
from tests.schemas.test_codec import changed, inbound, rejected
from tests.schemas.test_flat_writer import translated

events = st.one_of(inbound, changed, rejected, translated)


def _current(name: str) -> SchemaVersion:
    return default_catalogue().current(name)


def _fastavro(schema: SchemaVersion, datum: bytes, plain: bool) -> dict[str, Any]:
    parsed = _plain(schema.path) if plain else schema.parsed
    record = schemaless_reader(BytesIO(datum), parsed, None)
    assert isinstance(record, dict)
    return record


@pytest.mark.parametrize("plain", [False, True])
@given(event=events)
def test_every_event_is_read_as_fastavro_reads_it(event: Any, plain: bool) -> None:
    schema = _current(type(event).__name__)
    data = encode_with(schema, to_record(event))
    read = flat_reader(schema.parsed, plain=plain)
    assert read is not None, f"{schema.name} v{schema.version} is not flat"
    record, end = read(data, HEADER_SIZE)
    assert end == len(data)
    expected = _fastavro(schema, data[HEADER_SIZE:], plain)
    assert record == expected
    # Equal datetimes may differ in zone: the same zone too, value by value.
    assert [getattr(v, "tzinfo", None) for v in record.values()] == [
        getattr(v, "tzinfo", None) for v in expected.values()
    ]
    # The keys are the field names interned: an event's __init__ matches its keywords by
    # identity before it compares strings (from_record 2.5x slower without).
    assert all(key is sys.intern(key) for key in record)


@given(event=events, cut=st.integers(min_value=1, max_value=400), flips=st.binary(max_size=8))
def test_damaged_bytes_raise_or_read_as_fastavro_reads_them(
    event: Any, cut: int, flips: bytes
) -> None:
    """Truncated or altered data: the flat reader raises, or reads what fastavro reads."""
    schema = _current(type(event).__name__)
    datum = bytearray(encode_with(schema, to_record(event))[HEADER_SIZE:])
    for n, flip in enumerate(flips):
        datum[(n * 37 + flip) % len(datum)] ^= flip
    datum = datum[: max(0, len(datum) - cut % (len(datum) + 1))]
    read = flat_reader(schema.parsed)
    assert read is not None
    try:
        record, end = read(bytes(datum), 0)
    except (IndexError, ValueError, UnicodeDecodeError, OverflowError):
        return
    stream = BytesIO(bytes(datum))
    assert record == schemaless_reader(stream, schema.parsed, None)
    assert end == stream.tell()


@given(event=events)
def test_the_codec_reads_the_current_schema_with_the_flat_reader_and_reports_damage(
    event: Any,
) -> None:
    codec = AvroCodec()
    name = type(event).__name__
    data = codec.encode(name, to_record(event))
    assert codec.decode(data) == (name, _fastavro(_current(name), data[HEADER_SIZE:], False))
    with pytest.raises(CorruptEvent, match="trailing bytes"):
        codec.decode(data + b"\x00")
    with pytest.raises(CorruptEvent, match="not a valid"):
        codec.decode(data[: HEADER_SIZE + 1])


def test_every_released_schema_has_a_flat_reader() -> None:
    for schema in default_catalogue().all():
        assert flat_reader(schema.parsed) is not None, f"{schema.name} v{schema.version}"
