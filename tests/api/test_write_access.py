"""Write-side access control against the real broker: a Bundle entry needs the scope of what it
will do (its request.method on the type in its request.url), never of a decoy resource; and
the audit trail is append-only (AuditEvent: no update, delete or Bundle entry, 405; create
only with system/audit.write). A refused request appends nothing to the inbound log."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from schemas.events import Format, InboundMessage, Rejected
from tests.api.conftest import auth

pytestmark = pytest.mark.kafka
FHIR = {"content-type": "application/fhir+json"}
OBSERVATION = {"resourceType": "Observation", "status": "final", "code": {"text": "pulse"}}
PATIENT = {"resourceType": "Patient", "name": [{"family": "Okafor"}]}
AUDIT = {
    "resourceType": "AuditEvent",
    "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
    "recorded": "2026-12-01T03:00:00.000Z",
    "agent": [{"requestor": True, "who": {"display": "an ATNA source"}}],
    "source": {"observer": {"display": "a PACS"}},
}
STRONG = "system/*.* system/AuditEvent.write system/audit.write"


def bundle(*entries: dict[str, Any], kind: str = "transaction") -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)})


def entry(method: str, url: str, resource: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"request": {"method": method, "url": url}}
    if resource is not None:
        out["resource"] = resource
    return out


def outcome(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return list(body["issue"])


def send(client: TestClient, appended: Any, scopes: str, method: str, path: str,
         body: bytes | None) -> tuple[Any, list[Any], list[Any]]:  # fmt: skip
    """The answer, and what it appended to the fhir inbound topic and to carelog.rejected."""
    headers = auth(scopes, **FHIR)
    response = client.request(method, path, content=body, headers=headers)
    rid = headers["X-Request-ID"]
    return response, appended(Format.fhir, rid), appended("rejected", rid)


# --- point 1: the scope of what will be done ---------------------------------------------


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_an_observation_writer_cannot_delete_a_patient_behind_a_decoy(
    client: TestClient, appended: Any, kind: str
) -> None:
    decoy = bundle(entry("DELETE", "Patient/x", OBSERVATION), kind=kind)
    response, inbound, rejected = send(
        client, appended, "system/Observation.write", "POST", "/fhir", decoy
    )
    assert response.status_code == 403
    assert "system/Patient.d" in outcome(response)[0]["diagnostics"]
    assert "system/Patient.d" in response.headers["www-authenticate"]
    assert inbound == [] and rejected == []


@pytest.mark.parametrize(
    ("entry_", "scopes", "status"),
    [
        (entry("DELETE", "Patient?identifier=urn:oid:1|M1", OBSERVATION),
         "system/Observation.write", 403),
        (entry("DELETE", "Patient?identifier=urn:oid:1|M1"), "system/Patient.cu", 403),
        (entry("DELETE", "Patient?identifier=urn:oid:1|M1"), "system/Patient.d", 202),
        (entry("PUT", "Patient?identifier=urn:oid:1|M1", PATIENT), "system/Patient.c", 403),
        (entry("PUT", "Patient?identifier=urn:oid:1|M1", PATIENT), "system/Patient.u", 202),
    ],
)  # fmt: skip
def test_conditional_urls_need_their_method_on_their_type(
    client: TestClient, appended: Any, entry_: dict[str, Any], scopes: str, status: int
) -> None:
    response, inbound, _ = send(client, appended, scopes, "POST", "/fhir", bundle(entry_))
    assert response.status_code == status
    assert len(inbound) == (1 if status == 202 else 0)


@pytest.mark.parametrize("kind", ["transaction", "batch"])
def test_an_entry_whose_resource_is_not_of_its_url_type_is_400_naming_the_entry(
    client: TestClient, appended: Any, kind: str
) -> None:
    body = bundle(
        entry("POST", "Patient", PATIENT),
        entry("DELETE", "Patient/x", OBSERVATION),
        kind=kind,
    )
    response, inbound, rejected = send(client, appended, "system/*.write", "POST", "/fhir", body)
    assert response.status_code == 400
    [issue] = outcome(response)
    assert issue["expression"] == ["Bundle.entry[1].resource.resourceType"]
    assert "Bundle.entry[1]" in issue["diagnostics"]
    assert inbound == []
    [(_, kept)] = rejected  # refused content is kept, with the reason
    assert isinstance(kept, Rejected) and kept.original == body


# --- point 4: the audit trail is append-only ---------------------------------------------


@pytest.mark.parametrize("scopes", ["system/*.write", STRONG])
@pytest.mark.parametrize(
    ("method", "body"), [("PUT", orjson.dumps({**AUDIT, "id": "a-1"})), ("DELETE", None)]
)
def test_audit_events_are_never_updated_or_deleted(
    client: TestClient, appended: Any, scopes: str, method: str, body: bytes | None
) -> None:
    response, inbound, rejected = send(
        client, appended, scopes, method, "/fhir/AuditEvent/a-1", body
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    [issue] = outcome(response)
    assert "append-only" in issue["diagnostics"]
    assert inbound == [] and rejected == []


@pytest.mark.parametrize(
    "entry_",
    [
        entry("POST", "AuditEvent", AUDIT),
        entry("PUT", "AuditEvent/a-1", {**AUDIT, "id": "a-1"}),
        entry("DELETE", "AuditEvent/a-1"),
    ],
)
def test_audit_events_cannot_be_written_in_a_bundle(
    client: TestClient, appended: Any, entry_: dict[str, Any]
) -> None:
    body = bundle(entry("POST", "Patient", PATIENT), entry_)
    response, inbound, _ = send(client, appended, STRONG, "POST", "/fhir", body)
    assert response.status_code == 405
    [issue] = outcome(response)
    assert issue["expression"] == ["Bundle.entry[1].request.method"]
    assert inbound == []


@pytest.mark.parametrize(
    "scopes",
    ["system/*.write", "system/*.*", "system/AuditEvent.write", "system/AuditEvent.c"],
)
def test_creating_an_audit_event_needs_system_audit_write(
    client: TestClient, appended: Any, scopes: str
) -> None:
    response, inbound, _ = send(
        client, appended, scopes, "POST", "/fhir/AuditEvent", orjson.dumps(AUDIT)
    )
    assert response.status_code == 403
    assert "system/audit.write" in outcome(response)[0]["diagnostics"]
    assert inbound == []


def test_an_audit_source_with_system_audit_write_creates_one(
    client: TestClient, appended: Any
) -> None:
    body = orjson.dumps(AUDIT)
    response, [(_, event)], _ = send(
        client, appended, "system/audit.write", "POST", "/fhir/AuditEvent", body
    )
    assert response.status_code == 202
    assert isinstance(event, InboundMessage) and event.payload == body
    assert (event.headers["http.method"], event.headers["http.path"]) == (
        "POST",
        "/fhir/AuditEvent",
    )
