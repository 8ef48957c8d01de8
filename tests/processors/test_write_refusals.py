"""The processors refuse, whatever channel a FHIR write came by (the gateway, or straight onto
the inbound topic): a Bundle entry whose resource is of another type than its request.url
(a decoy), and any update or delete of an AuditEvent (an append-only record)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from processors.canonical import canonical_json
from processors.fhir_input import translate_fhir
from processors.pipeline import Record, version_record
from processors.translation import TranslationError
from processors.versioning import AppendOnlyViolation, VersionState, next_change
from schemas.events import Channel, Format, InboundMessage, Operation, Rejected, ResourceTranslated
from streams.event_codec import encode_event
from streams.topics import FHIR_TRANSLATED
from tests.processors.pipeline_driver import Pipeline, decoded

EVENT = "6f1c1d8e-5b8a-4f0e-9b0e-7d7f7c0b1a01"
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
OBSERVATION = {"resourceType": "Observation", "status": "final", "code": {"text": "pulse"}}
AUDIT = {
    "resourceType": "AuditEvent",
    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
    "recorded": "2026-12-01T03:00:00.000Z",
    "agent": [{"requestor": True, "who": {"display": "reader"}}],
    "source": {"observer": {"display": "carelog FHIR API"}},
}


def request(method: str, path: str) -> dict[str, str]:
    return {"http.method": method, "http.path": path}


def bundle(kind: str, *entries: dict[str, Any]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)})


def refusal(payload: bytes, headers: dict[str, str]) -> TranslationError:
    with pytest.raises(TranslationError) as exc:
        translate_fhir(payload, headers, EVENT)
    return exc.value


# --- a decoy resource in a Bundle entry ---------------------------------------------------


@pytest.mark.parametrize("kind", ["transaction", "batch"])
@pytest.mark.parametrize(
    "request_",
    [
        {"method": "DELETE", "url": "Patient/x"},
        {"method": "PUT", "url": "Patient/x"},
        {"method": "POST", "url": "Patient"},
    ],
)
def test_an_entry_whose_resource_is_not_of_the_url_type_is_refused(
    kind: str, request_: dict[str, str]
) -> None:
    payload = bundle(kind, {"request": request_, "resource": OBSERVATION})
    error = refusal(payload, request("POST", "/fhir"))
    [issue] = error.issues
    assert issue.location == "Bundle.entry[0].resource.resourceType"
    assert "'Observation'" in issue.diagnostics and "'Patient'" in issue.diagnostics


def test_a_delete_entry_with_a_resource_of_its_own_type_is_still_a_delete() -> None:
    entry = {"request": {"method": "DELETE", "url": "Patient/x"},
             "resource": {"resourceType": "Patient", "id": "x"}}  # fmt: skip
    translation = translate_fhir(bundle("transaction", entry), request("POST", "/fhir"), EVENT)
    assert [(r.operation, r.key) for r in translation.resources] == [("delete", "Patient/x")]


# --- AuditEvent is append-only ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "payload"),
    [("PUT", orjson.dumps({**AUDIT, "id": "a-1"})), ("DELETE", b"")],
)
def test_audit_event_update_and_delete_are_refused(method: str, payload: bytes) -> None:
    error = refusal(payload, request(method, "/fhir/AuditEvent/a-1"))
    [issue] = error.issues
    assert issue.location == "http.method"
    assert "append-only" in issue.diagnostics and method in issue.diagnostics


@pytest.mark.parametrize(
    "entry",
    [
        {"request": {"method": "DELETE", "url": "AuditEvent/a-1"}},
        {"request": {"method": "PUT", "url": "AuditEvent/a-1"}, "resource": {**AUDIT, "id": "a-1"}},
        # a create too, as the gateway answers 405: an audit source POSTs its records alone
        {"request": {"method": "POST", "url": "AuditEvent"}, "resource": AUDIT},
    ],
)
def test_audit_event_writes_in_a_bundle_are_refused(entry: dict[str, Any]) -> None:
    error = refusal(bundle("batch", entry), request("POST", "/fhir"))
    [issue] = error.issues
    assert issue.location == "Bundle.entry[0].request.method"
    assert "append-only" in issue.diagnostics


def test_audit_event_create_is_still_taken() -> None:
    translation = translate_fhir(orjson.dumps(AUDIT), request("POST", "/fhir/AuditEvent"), EVENT)
    [created] = translation.resources
    assert (created.operation, created.resource["resourceType"]) == ("upsert", "AuditEvent")


def test_a_delete_of_an_audit_event_put_straight_on_the_inbound_topic_is_rejected() -> None:
    event = InboundMessage.received(
        b"", channel=Channel.kafka, format=Format.fhir, content_type="application/fhir+json",
        sender="someone-with-topic-access", headers=request("DELETE", "/fhir/AuditEvent/a-1"),
    )  # fmt: skip
    changes, [rejected] = Pipeline().run(event)
    assert changes == []
    assert rejected.stage == "translate" and rejected.original_event_id == event.event_id
    assert "AuditEvent is append-only" in rejected.reason


# --- the versioning stage: a recorded AuditEvent is never replaced --------------------------


def translated(
    resource: dict[str, Any] | None, operation: Operation, offset: int
) -> ResourceTranslated:
    return ResourceTranslated(
        event_id=f"t-{offset}", resource_type="AuditEvent", resource_id="a-1", operation=operation,
        resource=canonical_json(resource) if resource is not None else None,
        inbound_event_id=f"in-{offset}", inbound_topic="carelog.inbound.fhir", inbound_partition=0,
        inbound_offset=offset, received_at=T0, mapping_version="fhir-input/1.0.0",
    )  # fmt: skip


def recorded() -> VersionState:
    change, state = next_change(translated({**AUDIT, "id": "a-1"}, Operation.upsert, 1), None)
    assert change is not None and change.version == 1 and state is not None
    return state


def test_the_same_audit_event_again_changes_nothing() -> None:
    state = recorded()
    assert next_change(translated({**AUDIT, "id": "a-1"}, Operation.upsert, 2), state)[0] is None


@pytest.mark.parametrize(
    ("resource", "operation"),
    [({**AUDIT, "id": "a-1", "outcome": "8"}, Operation.upsert), (None, Operation.delete)],
)
def test_a_recorded_audit_event_is_never_replaced_or_deleted(
    resource: dict[str, Any] | None, operation: Operation
) -> None:
    state = recorded()
    with pytest.raises(AppendOnlyViolation):
        next_change(translated(resource, operation, 2), state)
    record = Record(FHIR_TRANSLATED, 0, 2, b"AuditEvent/a-1",
                    encode_event(translated(resource, operation, 2)))  # fmt: skip
    [out], after = version_record(record, state)
    assert after == state  # nothing recorded, nothing moved
    rejected = decoded(out.value, Rejected)
    assert rejected.stage == "version" and "append-only" in rejected.reason
    assert orjson.loads(rejected.operation_outcome)["issue"][0]["code"] == "forbidden"
