"""The read path's AuditEvent record is byte for byte the generic encoding of the same change
in clear, and, sealed, the same change once opened, sealed with the same key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from api.fhir.audit import audit_change
from api.fhir.audit_event import audit_event
from api.fhir.audit_record import audit_record, recorded_now
from api.security.auth import Principal
from schemas.events import new_event_id
from streams.event_codec import decode_event, encode_event
from streams.privacy import envelope
from streams.privacy.keystore import MemoryKeyStore
from streams.settings import get_settings


@pytest.fixture
def sealing_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CARELOG_KEY_STORE", "off")
    get_settings.cache_clear()
    envelope.install(None)
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    envelope.install(None)


@pytest.fixture
def sealing_on() -> Iterator[MemoryKeyStore]:
    keys = MemoryKeyStore()
    envelope.install(keys)
    yield keys
    envelope.install(None)


READER = Principal(subject="app", scopes=frozenset({"user/*.read"}))
PATIENT_APP = Principal(subject='p"app\\é', scopes=frozenset({"patient/*.read"}), patient="p1")


ACCESSES = pytest.mark.parametrize(
    ("principal", "interaction", "refs", "query"),
    [
        (READER, "read", ["Patient/p1"], None),
        (READER, "search-type", [f"Observation/o{n}" for n in range(150)],
         'Observation?code=x|"id":"y"&name=Zoë,"outcome":1'),
        (PATIENT_APP, "vread", ["Patient/p1/_history/3"], None),
        (PATIENT_APP, "history-system", [], None),
        (READER, "operation", [], "Patient/p1/$everything"),
        (READER, "search-type", ["Observation/o1", "Observation/o2"], "Observation?patient=p1,p2"),
    ],
)  # fmt: skip


@ACCESSES
@pytest.mark.usefixtures("sealing_off")
def test_the_record_is_the_generic_encoding_of_the_change(
    principal: Principal, interaction: str, refs: list[str], query: str | None
) -> None:
    recorded_at, at_us = recorded_now()
    event = audit_event(principal, interaction, "10.0.0.9", refs, query, recorded_at)
    access = new_event_id()
    fast = audit_record(event, access, recorded_at, at_us)
    reference = audit_change(event, access, recorded_at)
    assert fast == encode_event(reference)
    assert decode_event(fast) == reference


@ACCESSES
def test_sealed_it_opens_to_the_generic_change_with_the_same_key(
    sealing_on: MemoryKeyStore,
    principal: Principal, interaction: str, refs: list[str], query: str | None,
) -> None:  # fmt: skip
    recorded_at, at_us = recorded_now()
    event = audit_event(principal, interaction, "10.0.0.9", refs, query, recorded_at)
    access = new_event_id()
    fast = audit_record(event, access, recorded_at, at_us)
    generic = encode_event(audit_change(event, access, recorded_at))
    assert decode_event(fast, open_phi=False).key_id == decode_event(generic, open_phi=False).key_id
    assert decode_event(fast, open_phi=False).resource is None  # nothing of it in clear
    assert decode_event(fast) == decode_event(generic) == audit_change(event, access, recorded_at)


def test_a_read_of_one_patient_is_sealed_with_their_key(sealing_on: MemoryKeyStore) -> None:
    recorded_at, at_us = recorded_now()
    event = audit_event(READER, "read", "10.0.0.9", ["Observation/o7", "Patient/p9"], None,
                        recorded_at)  # fmt: skip
    sealed = decode_event(audit_record(event, new_event_id(), recorded_at, at_us), open_phi=False)
    assert sealed.key_id == sealing_on.key_for("patient:p9")[0]


def test_recorded_now_gives_the_microseconds_of_its_datetime() -> None:
    recorded_at, at_us = recorded_now()
    assert (
        datetime.fromtimestamp(at_us // 1_000_000, UTC).replace(microsecond=at_us % 1_000_000)
        == recorded_at
    )
