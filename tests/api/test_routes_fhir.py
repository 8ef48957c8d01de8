"""FHIR writes against the real broker: appended with method, path and conditional headers,
answered 202 with the event id; refusals as OperationOutcomes and on carelog.rejected."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from schemas.events import Format, InboundMessage, Rejected
from tests.api.conftest import auth

pytestmark = pytest.mark.kafka
FHIR = {"content-type": "application/fhir+json"}
PATIENT = b'{"resourceType": "Patient", "id": "p-1", "name": [{"family": "Nguyen"}]}'


def issues(response) -> list[dict]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


def test_create_is_202_with_event_id_and_headers_on_the_event(client: TestClient, appended) -> None:
    headers = auth(
        **FHIR, **{"If-None-Exist": "identifier=urn:oid:1|MRN1", "Idempotency-Key": "k-1"}
    )
    response = client.post("/fhir/Patient", content=PATIENT, headers=headers)

    assert response.status_code == 202
    assert response.headers["content-type"] == "application/fhir+json"
    event_id = response.headers["x-event-id"]
    assert issues(response)[0]["severity"] == "information"
    assert event_id in issues(response)[0]["diagnostics"]
    [(_, event)] = appended(Format.fhir, headers["X-Request-ID"])
    assert isinstance(event, InboundMessage)
    assert event.event_id == event_id
    assert event.payload == PATIENT
    assert event.idempotency_key == "k-1"
    assert event.headers["http.method"] == "POST"
    assert event.headers["http.path"] == "/fhir/Patient"
    assert event.headers["http.if-none-exist"] == "identifier=urn:oid:1|MRN1"


def test_update_carries_method_path_and_if_match(client: TestClient, appended) -> None:
    headers = auth(**{"content-type": "application/json; charset=utf-8", "If-Match": 'W/"3"'})
    response = client.put("/fhir/Patient/p-1", content=PATIENT, headers=headers)
    assert response.status_code == 202
    [(_, event)] = appended(Format.fhir, headers["X-Request-ID"])
    assert event.payload == PATIENT
    assert event.content_type == "application/json; charset=utf-8"
    assert (event.headers["http.method"], event.headers["http.path"]) == (
        "PUT",
        "/fhir/Patient/p-1",
    )
    assert event.headers["http.if-match"] == 'W/"3"'


def test_delete_has_an_empty_payload(client: TestClient, appended) -> None:
    headers = auth()
    response = client.delete("/fhir/Observation/obs-9", headers=headers)
    assert response.status_code == 202
    [(_, event)] = appended(Format.fhir, headers["X-Request-ID"])
    assert event.payload == b""
    assert (event.headers["http.method"], event.headers["http.path"]) == (
        "DELETE",
        "/fhir/Observation/obs-9",
    )


def test_transaction_bundle_is_accepted(client: TestClient, corpus: Path, appended) -> None:
    bundle = (corpus / "fhir" / "transaction_patient_with_condition.json").read_bytes()
    headers = auth(**FHIR)
    response = client.post("/fhir", content=bundle, headers=headers)
    assert response.status_code == 202
    [(_, event)] = appended(Format.fhir, headers["X-Request-ID"])
    assert event.payload == bundle
    assert (event.headers["http.method"], event.headers["http.path"]) == ("POST", "/fhir")


@pytest.mark.parametrize(
    ("method", "path", "body", "location"),
    [
        ("put", "/fhir/Patient/p-2", PATIENT, "id"),  # id differs from the URL
        ("post", "/fhir/Observation", PATIENT, "resourceType"),  # type differs from the URL
        ("post", "/fhir/Patient", b"{not json", None),
        ("post", "/fhir/Patient", b"[1, 2]", None),
        ("post", "/fhir", b'{"resourceType": "Bundle", "type": "collection"}', "Bundle.type"),
        ("post", "/fhir", b'{"resourceType": "Bundle", "type": "batch", "entry": [{}]}',
         "Bundle.entry[0].request"),
    ],
)  # fmt: skip
def test_malformed_writes_are_400_and_kept(
    client: TestClient, appended, method, path, body, location
) -> None:
    headers = auth(**FHIR)
    response = client.request(method.upper(), path, content=body, headers=headers)
    assert response.status_code == 400
    [issue] = issues(response)
    assert issue["severity"] == "error"
    if location:
        assert issue["expression"] == [location]
    [(_, rejected)] = appended("rejected", headers["X-Request-ID"])
    assert isinstance(rejected, Rejected)
    assert rejected.original == body
    assert rejected.format == "fhir"
    assert (
        orjson.loads(rejected.operation_outcome)["issue"][0]["diagnostics"] == issue["diagnostics"]
    )
    assert appended(Format.fhir, headers["X-Request-ID"]) == []


def test_xml_is_415_and_kept(client: TestClient, appended) -> None:
    headers = auth(**{"content-type": "application/fhir+xml"})
    body = b"<Patient xmlns='http://hl7.org/fhir'/>"
    response = client.post("/fhir/Patient", content=body, headers=headers)
    assert response.status_code == 415
    assert issues(response)[0]["code"] == "not-supported"
    [(_, rejected)] = appended("rejected", headers["X-Request-ID"])
    assert rejected.original == body


def test_accept_xml_only_is_406(client: TestClient, appended) -> None:
    headers = auth(**FHIR, accept="application/fhir+xml")
    response = client.post("/fhir/Patient", content=PATIENT, headers=headers)
    assert response.status_code == 406
    assert appended(Format.fhir, headers["X-Request-ID"]) == []
    assert appended("rejected", headers["X-Request-ID"]) == []


def test_scopes_per_type_and_action(client: TestClient, corpus: Path) -> None:
    def status(scopes: str, method: str, path: str, body: bytes | None = PATIENT) -> int:
        headers = auth(scopes, **FHIR)
        return client.request(method, path, content=body, headers=headers).status_code

    observation = b'{"resourceType": "Observation", "id": "o-1"}'
    assert status("system/Patient.write", "POST", "/fhir/Patient") == 202
    assert status("system/Patient.write", "POST", "/fhir/Observation", observation) == 403
    assert status("system/Patient.read", "POST", "/fhir/Patient") == 403
    assert status("user/Patient.write", "POST", "/fhir/Patient") == 403  # system scopes only
    assert status("system/Patient.c", "POST", "/fhir/Patient") == 202  # SMART v2
    assert status("system/Patient.c", "PUT", "/fhir/Patient/p-1") == 403
    assert status("system/Patient.cu", "PUT", "/fhir/Patient/p-1") == 202
    assert status("system/Patient.cu", "DELETE", "/fhir/Patient/p-1", None) == 403
    assert status("system/*.cud", "DELETE", "/fhir/Patient/p-1", None) == 202
    bundle = (corpus / "fhir" / "transaction_patient_with_condition.json").read_bytes()
    assert status("system/Patient.write", "POST", "/fhir", bundle) == 403  # has a Condition
    assert status("system/Patient.write system/Condition.c", "POST", "/fhir", bundle) == 202


def test_403_names_the_scope_and_no_token_is_401(client: TestClient) -> None:
    response = client.post(
        "/fhir/Patient", content=PATIENT, headers=auth("system/Observation.write", **FHIR)
    )
    assert response.status_code == 403
    assert "system/Patient.c" in issues(response)[0]["diagnostics"]
    response = client.post("/fhir/Patient", content=PATIENT, headers=FHIR)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="carelog"'
    assert issues(response)[0]["code"] == "login"


@pytest.mark.parametrize(
    ("headers", "body", "location"),
    [
        ({"If-None-Exist": "_count=1"}, PATIENT, "If-None-Exist"),
        ({"If-None-Exist": "identifier="}, PATIENT, "If-None-Exist"),
        ({}, orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient"},
             "request": {"method": "POST", "url": "Patient", "ifNoneExist": "&"}}]}),
         "Bundle.entry[0].request.ifNoneExist"),
    ],
)  # fmt: skip
def test_conditional_create_criteria_that_select_nothing_are_400_at_the_door(
    client: TestClient,
    appended: Callable[..., Any],
    headers: dict[str, str],
    body: bytes,
    location: str,
) -> None:
    """Checked before anything is appended, even on a node without a FHIR store."""
    sent = auth(**FHIR, **headers)
    path = "/fhir" if location.startswith("Bundle") else "/fhir/Patient"
    response = client.post(path, content=body, headers=sent)
    assert response.status_code == 400, response.text
    [issue] = issues(response)
    assert issue["expression"] == [location] and issue["code"] == "not-supported"
    assert [r.original for _, r in appended("rejected", sent["X-Request-ID"])] == [body]
    assert appended(Format.fhir, sent["X-Request-ID"]) == []


def test_a_client_cannot_set_the_ids_the_gateway_resolved(
    client: TestClient, appended: Callable[..., Any]
) -> None:
    sent = auth(**FHIR, **{"carelog.if-none-exist.ids": '{"0": "p-9"}'})
    response = client.post("/fhir/Patient", content=PATIENT, headers=sent)
    assert response.status_code == 202
    [(_, event)] = appended(Format.fhir, sent["X-Request-ID"])
    assert isinstance(event, InboundMessage)
    assert "carelog.if-none-exist.ids" not in event.headers
