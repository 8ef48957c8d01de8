"""The read path's AuditEvent record is byte for byte the generic encoding of the same change."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from api.fhir.audit import audit_change, audit_event
from api.fhir.audit_record import audit_record, recorded_now
from api.security.auth import Principal
from schemas.events import new_event_id
from streams.event_codec import decode_event, encode_event
from streams.privacy import envelope
from streams.settings import get_settings


@pytest.fixture(autouse=True)
def sealing_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The hand-laid record is the clear one (with sealing on, audit() encodes generically)."""
    monkeypatch.setenv("CARELOG_KEY_STORE", "off")
    get_settings.cache_clear()
    envelope.install(None)
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
    envelope.install(None)


READER = Principal(subject="app", scopes=frozenset({"user/*.read"}))
PATIENT_APP = Principal(subject='p"app\\é', scopes=frozenset({"patient/*.read"}), patient="p1")


@pytest.mark.parametrize(
    ("principal", "interaction", "refs", "query"),
    [
        (READER, "read", ["Patient/p1"], None),
        (READER, "search-type", [f"Observation/o{n}" for n in range(150)],
         'Observation?code=x|"id":"y"&name=Zoë,"outcome":1'),
        (PATIENT_APP, "vread", ["Patient/p1/_history/3"], None),
        (PATIENT_APP, "history-system", [], None),
        (READER, "operation", [], "Patient/p1/$everything"),
    ],
)  # fmt: skip
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


def test_recorded_now_gives_the_microseconds_of_its_datetime() -> None:
    recorded_at, at_us = recorded_now()
    assert (
        datetime.fromtimestamp(at_us // 1_000_000, UTC).replace(microsecond=at_us % 1_000_000)
        == recorded_at
    )
