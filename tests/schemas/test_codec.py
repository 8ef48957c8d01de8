"""Round trips and corrupt input for the single-object Avro codec."""

from __future__ import annotations

import contextlib
import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.catalogue import default_catalogue
from schemas.codec import MARKER, AvroCodec
from schemas.errors import CodecError, CorruptEvent, UnknownFingerprint
from schemas.events import Channel, Format, InboundMessage, Operation, Rejected, ResourceChanged
from streams.event_codec import decode_event, encode_event

text = st.text(max_size=40)
opt_text = st.none() | text
# Avro timestamp-micros keeps microseconds in UTC.
instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
headers = st.dictionaries(
    st.text(string.ascii_lowercase + ".-", min_size=1, max_size=12), text, max_size=4
)
int32 = st.integers(min_value=0, max_value=2**31 - 1)
int64 = st.integers(min_value=0, max_value=2**63 - 1)

inbound = st.builds(
    InboundMessage,
    event_id=st.uuids().map(str),
    received_at=instants,
    channel=st.sampled_from(Channel),
    format=st.sampled_from(Format),
    content_type=text,
    sender=text,
    payload_size=int64,
    sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
    payload=st.none() | st.binary(max_size=4096),
    payload_ref=opt_text,
    idempotency_key=opt_text,
    correlation_id=opt_text,
    headers=headers,
)
changed = st.builds(
    ResourceChanged,
    event_id=st.uuids().map(str),
    resource_type=st.sampled_from(["Patient", "Observation", "Encounter"]),
    resource_id=text,
    version=st.integers(min_value=1, max_value=2**62),
    operation=st.sampled_from(Operation),
    content_hash=text,
    inbound_event_id=st.uuids().map(str),
    inbound_topic=text,
    inbound_partition=int32,
    inbound_offset=int64,
    recorded_at=instants,
    mapping_version=text,
    resource=opt_text,
    business_time=st.none() | instants,
)
rejected = st.builds(
    Rejected,
    event_id=st.uuids().map(str),
    rejected_at=instants,
    stage=text,
    reason=text,
    operation_outcome=text,
    original=st.binary(max_size=2048),
    format=opt_text,
    content_type=opt_text,
    sender=opt_text,
    correlation_id=opt_text,
    original_event_id=opt_text,
    original_topic=opt_text,
    original_partition=st.none() | int32,
    original_offset=st.none() | int64,
    original_key=st.none() | st.binary(max_size=64),
    headers=headers,
)


# deadline=None: the first resource sealed loads the compartment definitions (streams/privacy/).
@settings(deadline=None)
@given(st.one_of(inbound, changed, rejected))
def test_every_event_round_trips(event: InboundMessage | ResourceChanged | Rejected) -> None:
    data = encode_event(event)
    assert data[:2] == MARKER
    assert data[2:10] == default_catalogue().current(type(event).__name__).fingerprint
    assert decode_event(data) == event


@given(inbound)
def test_payload_bytes_are_kept_exactly(event: InboundMessage) -> None:
    assert decode_event(encode_event(event)).payload == event.payload  # type: ignore[union-attr]


def _sample() -> bytes:
    return encode_event(
        InboundMessage.received(
            b"MSH|^~\\&|A|B", channel=Channel.http, format=Format.hl7v2,
            content_type="x-application/hl7-v2+er7", sender="lab",
        )
    )  # fmt: skip


def test_wrong_marker_names_the_expected_marker() -> None:
    with pytest.raises(CorruptEvent, match="C3 01"):
        decode_event(b"\x00\x01" + _sample()[2:])


def test_too_short_names_the_header_size() -> None:
    with pytest.raises(CorruptEvent, match="at least 10 bytes"):
        decode_event(b"\xc3\x01\x00")


def test_unknown_fingerprint_lists_the_known_schemas() -> None:
    data = _sample()
    with pytest.raises(UnknownFingerprint) as err:
        decode_event(data[:2] + b"\xff" * 8 + data[10:])
    message = str(err.value)
    assert "ffffffffffffffff" in message
    for version in default_catalogue().all():
        assert version.fingerprint_hex in message


def test_truncated_datum_is_corrupt() -> None:
    with pytest.raises(CorruptEvent, match="InboundMessage v2"):
        decode_event(_sample()[:-5])


def test_trailing_bytes_are_corrupt() -> None:
    with pytest.raises(CorruptEvent, match="trailing"):
        decode_event(_sample() + b"\x00\x00")


@given(st.binary(max_size=200))
def test_random_bytes_raise_codec_errors_only(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_event(data)


@given(st.binary(min_size=1, max_size=200))
def test_random_datum_after_a_valid_header_raises_codec_errors_only(tail: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode_event(_sample()[:10] + tail)


def test_decoding_as_the_wrong_record_is_refused() -> None:
    with pytest.raises(CodecError, match="expected a ResourceChanged event, got InboundMessage"):
        AvroCodec().decode(_sample(), reader="ResourceChanged")


def test_encoding_a_record_that_does_not_fit_names_the_schema() -> None:
    with pytest.raises(CodecError, match="Rejected v2"):
        AvroCodec().encode("Rejected", {"event_id": 3})


def _micros(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


@settings(deadline=None)  # the first plain decode parses the schemas: no timing to hold
@given(st.one_of(inbound, changed, rejected))
def test_a_plain_decode_equals_the_full_one_with_times_in_microseconds(
    event: InboundMessage | ResourceChanged | Rejected,
) -> None:
    data = encode_event(event)
    name, full = AvroCodec().decode(data)
    plain_name, plain = AvroCodec().decode(data, plain=True)
    assert plain_name == name
    assert plain.keys() == full.keys()
    for key, value in full.items():
        expected = _micros(value) if isinstance(value, datetime) else value
        assert plain[key] == expected, key
