"""Sealing and opening PHI fields (streams/privacy/envelope.py) with keys held in memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from processors.canonical import canonical_json
from schemas.codec import AvroCodec
from schemas.events import (
    Channel,
    Format,
    InboundMessage,
    Operation,
    Rejected,
    ResourceChanged,
    is_erased,
)
from streams.event_codec import decode_event, encode_event
from streams.privacy import envelope
from streams.privacy.keystore import MemoryKeyStore

NAME = b"Zebedee^Quintus"


@pytest.fixture
def keys() -> Iterator[MemoryKeyStore]:
    store = MemoryKeyStore()
    envelope.install(store)
    yield store
    envelope.install(None)


def _inbound() -> InboundMessage:
    return InboundMessage.received(
        b"MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|1||M77^^^H^MR||" + NAME + b"\r",
        channel=Channel.http, format=Format.hl7v2, content_type="x", sender="s",
    )  # fmt: skip


def _observation(patient: str) -> ResourceChanged:
    resource = {"resourceType": "Observation", "id": "o1", "status": "final",
                "code": {"text": "Zebedee's glucose"}, "subject": {"reference": f"Patient/{patient}"}}  # fmt: skip
    return ResourceChanged(
        event_id="e1", resource_type="Observation", resource_id="o1", version=1,
        operation=Operation.upsert, content_hash="h", inbound_event_id="i", inbound_topic="t",
        inbound_partition=0, inbound_offset=0, recorded_at=datetime.now(UTC),
        mapping_version="m", resource=canonical_json(resource),
    )  # fmt: skip


def _key_id(data: bytes) -> str:
    return str(AvroCodec().decode(data)[1]["key_id"])


def test_phi_is_not_in_the_bytes_and_comes_back_with_the_key(keys: MemoryKeyStore) -> None:
    event = _inbound()
    data = encode_event(event)
    assert NAME not in data and b"M77" not in data
    assert _key_id(data).startswith("msg:")
    assert decode_event(data) == event


def test_a_resource_is_sealed_with_its_patients_key(keys: MemoryKeyStore) -> None:
    a, b = encode_event(_observation("p1")), encode_event(_observation("p1"))
    assert b"Zebedee" not in a
    assert _key_id(a) == _key_id(b) and _key_id(a).startswith("patient:p1/")
    assert _key_id(encode_event(_observation("p2"))).startswith("patient:p2/")
    assert keys.key_ids("patient:p1") == [_key_id(a)]


def test_a_resource_of_no_patient_is_sealed_with_its_types_key(keys: MemoryKeyStore) -> None:
    def organization(n: int) -> ResourceChanged:
        return replace(_observation("p1"), resource_type="Organization", resource_id=f"org{n}",
                       resource=canonical_json({"resourceType": "Organization", "id": f"org{n}",
                                                "name": "North Wing Hospital"}))  # fmt: skip

    a, b = encode_event(organization(1)), encode_event(organization(2))
    assert b"North Wing" not in a
    assert _key_id(a) == _key_id(b) and _key_id(a).startswith("resource:Organization/")
    assert decode_event(a).resource == organization(1).resource
    assert keys.key_ids("patient:p1") == []


def test_an_inbound_message_is_sealed_with_its_patients_key_once_there_is_one(
    keys: MemoryKeyStore,
) -> None:
    new_patient = encode_event(_inbound(), owner="p1")
    assert _key_id(new_patient).startswith("msg:")  # the edge makes no patient key
    assert keys.key_ids("patient:p1") == []
    patient_key = _key_id(encode_event(_observation("p1")))  # the worker made it
    returning = encode_event(_inbound(), owner="p1")
    assert _key_id(returning) == patient_key and NAME not in returning
    assert decode_event(returning).payload == _inbound().payload
    keys.shred([patient_key])
    assert is_erased(decode_event(returning))  # erasing the patient erases the message


@pytest.mark.parametrize(
    "resource_type,resource_id,text,owner",
    [
        ("Patient", "p1", '{"resourceType":"Patient","id":"p1"}', "p1"),
        ("Patient", None, '{"resourceType":"Patient"}', None),  # created: id not known yet
        ("Observation", None, '{"subject":{"reference":"Patient/p1"}}', "p1"),
        (
            "Observation",
            "o",
            '{"subject":{"reference":"Patient/p1"},"performer":[{"reference":"Patient/p2"}]}',
            None,
        ),  # two patients
        ("Patient", "p1", '{"link":[{"other":{"reference":"Patient/p2"}}]}', None),
        ("Organization", "x", '{"name":"NWH"}', None),
    ],
)
def test_sole_patient_of_an_inbound_fhir_write(
    resource_type: str, resource_id: str | None, text: str, owner: str | None
) -> None:
    assert envelope.sole_patient(resource_type, resource_id, text) == owner


def test_shredding_the_key_erases_the_event_for_good(keys: MemoryKeyStore) -> None:
    data = encode_event(_observation("p1"))
    other = encode_event(_observation("p2"))
    assert keys.shred(keys.key_ids("patient:p1")) == [_key_id(data)]
    event = decode_event(data)
    assert is_erased(event) and event.resource is None
    assert event.resource_id == "o1"  # metadata stays readable: routing, lineage, replay
    assert not is_erased(decode_event(other))
    # Writing an erased event on (a redrive, a replay) keeps it sealed and unreadable.
    assert is_erased(decode_event(encode_event(event)))


def test_rejected_reasons_and_originals_are_sealed(keys: MemoryKeyStore) -> None:
    event = Rejected(
        event_id="r1", rejected_at=datetime.now(UTC), stage="parse",
        reason="PID-5: Zebedee is not a name", operation_outcome='{"x": "Zebedee"}',
        original=NAME, original_key=b"k",
    )  # fmt: skip
    data = encode_event(event)
    assert b"Zebedee" not in data
    assert decode_event(data) == event
    keys.shred([_key_id(data)])
    erased = decode_event(data)
    assert is_erased(erased) and erased.original == b"" and erased.reason == ""


def test_a_tampered_event_does_not_open(keys: MemoryKeyStore) -> None:
    data = bytearray(encode_event(_inbound()))
    data[-40] ^= 1  # a bit inside the sealed bytes: the GCM tag refuses it
    assert is_erased(decode_event(bytes(data)))


def test_with_encryption_off_events_are_written_in_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams.settings import get_settings

    monkeypatch.setenv("CARELOG_KEY_STORE", "off")
    get_settings.cache_clear()
    envelope.install(None)
    try:
        event = _inbound()
        data = encode_event(event)
        assert NAME in data and decode_event(data) == event
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        envelope.install(None)


@pytest.mark.parametrize(
    ("resource_type", "resource", "owner"),
    [
        ("Patient", {"link": [{"other": {"reference": "Patient/zz"}}]}, "self"),
        ("Observation", {"subject": {"reference": "Patient/p-1.a"}}, "p-1.a"),
        ("Observation", {"subject": {"reference": "https://h/fhir/Patient/p7/_history/2"}}, "p7"),
        ("RelatedPerson", {"patient": {"reference": "Patient/b"}, "x": {"reference": "Patient/a"}}, "a"),
        ("Observation", {"subject": {"reference": "Group/g"}, "note": [{"text": "Patient/q"}]}, None),
        ("Organization", {"name": "Ward 4"}, None),
    ],
)  # fmt: skip
def test_owner_of_a_resource(
    resource_type: str, resource: dict[str, object], owner: str | None
) -> None:
    """A Patient is its own owner; another resource the patient it refers to (the smallest
    id of several), found in its canonical JSON; a mention that is no reference is none."""
    found = envelope.owner_of(resource_type, "self", canonical_json(resource))
    assert found == owner


def test_a_batch_looks_each_key_up_once_and_a_shredded_key_stays_shut(
    keys: MemoryKeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    codec = AvroCodec()
    sealed = [encode_event(_observation(p)) for p in ("p1", "p1", "p1", "p2", "p2")]
    gone = encode_event(_observation("p3"))
    keys.shred(keys.key_ids("patient:p3"))
    looked_up: list[str] = []
    lookup = keys.cipher
    monkeypatch.setattr(keys, "cipher", lambda key_id: looked_up.append(key_id) or lookup(key_id))
    ciphers: envelope.KeyMemo = {}
    records = [codec.decode(data, plain=True)[1] for data in [*sealed, gone, gone]]
    opened = [envelope.open_record("ResourceChanged", r, ciphers) for r in records]
    assert opened[:5] == [_key_id(d) for d in sealed] and opened[5:] == [None, None]
    assert all(b"Zebedee" in r["resource"].encode() for r in records[:5])
    assert all(r["sealed"] is not None and not r["resource"] for r in records[5:])
    assert sorted(looked_up) == sorted({_key_id(d) for d in [*sealed, gone]})  # once each
