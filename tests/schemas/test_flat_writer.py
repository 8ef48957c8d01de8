"""The flat writer writes exactly fastavro's bytes, and leaves to fastavro what it does not write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from schemas.catalogue import SchemaVersion, default_catalogue
from schemas.codec import MARKER, encode_with
from schemas.events import Operation, ResourceTranslated, to_record
from schemas.flat_writer import NotFlat, flat_writer
from tests.schemas.test_codec import changed, inbound, instants, opt_text, rejected, text

longs = st.integers(min_value=-(2**63), max_value=2**63 - 1)
translated = st.builds(
    ResourceTranslated,
    event_id=text,
    resource_type=text,
    resource_id=text,
    operation=st.sampled_from(Operation),
    inbound_event_id=text,
    inbound_topic=text,
    inbound_partition=st.integers(min_value=-(2**31), max_value=2**31 - 1),
    inbound_offset=longs,
    # any offset, before the epoch too
    received_at=st.datetimes(
        min_value=datetime(1900, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30))]),
    ),
    mapping_version=text,
    resource=st.none() | st.text(min_size=60, max_size=300),  # lengths past one varint byte
    if_match=st.none() | longs,
    if_none_exist=st.booleans(),
    business_time=st.none() | instants,
    sender=opt_text,
    correlation_id=opt_text,
    warnings=opt_text,
)


def _fastavro(schema: SchemaVersion, record: dict[str, Any]) -> bytes:
    out = BytesIO()
    schemaless_writer(out, schema.parsed, record)
    return out.getvalue()


def _current(name: str) -> SchemaVersion:
    return default_catalogue().current(name)


@given(st.one_of(inbound, changed, rejected, translated))
def test_every_event_is_written_as_fastavro_writes_it(event: Any) -> None:
    schema = _current(type(event).__name__)
    writer = flat_writer(schema.parsed)
    assert writer is not None, f"{schema.name} v{schema.version} is not flat"
    record = to_record(event)
    assert writer.write(record) == _fastavro(schema, record)


def test_every_released_schema_is_flat() -> None:
    for schema in default_catalogue().all():
        assert flat_writer(schema.parsed) is not None, f"{schema.name} v{schema.version}"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("received_at", datetime(2026, 1, 1, 12, 0)),  # naive: fastavro reads it as local time
        ("inbound_offset", True),  # a bool is no long
        ("inbound_offset", 2**63),  # beyond a long
        ("operation", "merge"),  # not a symbol
    ],
)
def test_what_it_does_not_write_is_left_to_fastavro(field: str, value: Any) -> None:
    schema = _current("ResourceTranslated")
    writer = flat_writer(schema.parsed)
    assert writer is not None
    record = to_record(_a_translated()) | {field: value}
    with pytest.raises(NotFlat):
        writer.write(record)
    try:
        expected: bytes | type[Exception] = MARKER + schema.fingerprint + _fastavro(schema, record)
    except Exception as exc:  # fastavro refuses it too: encode_with says why, as before
        expected = type(exc)
    if isinstance(expected, bytes):
        assert encode_with(schema, record) == expected
    else:
        with pytest.raises(Exception, match=f"{schema.name} v{schema.version}"):
            encode_with(schema, record)


def _a_translated() -> ResourceTranslated:
    return ResourceTranslated(
        event_id="e", resource_type="Patient", resource_id="p", operation=Operation.upsert,
        inbound_event_id="i", inbound_topic="t", inbound_partition=0, inbound_offset=7,
        received_at=datetime(2026, 1, 1, tzinfo=UTC), mapping_version="m", resource="{}",
    )  # fmt: skip
