"""FHIR writes waiting for the store, against the real broker and a real store, with the
processors played by the test: it reads the InboundMessage the gateway appended and folds
the ResourceChanged (or Rejected) the processors would make into the store. Answers: 201,
200, 204, unchanged (200, no change), 412 and 422 from rejections, transaction-response,
202 with respond-async and on timeout. (test_fhir_rest_pipeline.py runs the real worker.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.fhir.write_targets import resource_id
from api.security.dev_token import mint_token
from projections.fhir_store import FhirStore
from schemas.events import Format, InboundMessage, Rejected
from tests.api.conftest import SECRET
from tests.projections.fhir_store_support import Offsets, changed, uid

pytestmark = pytest.mark.kafka
Reply = Callable[[InboundMessage], list[Any]]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FhirStore, Offsets]]:
    path = tmp_path_factory.mktemp("fhir-writes") / "store.sqlite"
    with FhirStore.open(path) as writable:
        yield writable, Offsets("sim.changes")


@pytest.fixture(scope="module")
def api(store: tuple[FhirStore, Offsets], make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(
        store={"path": store[0].path},
        fhir={"write_wait_seconds": 4.0, "write_unchanged_seconds": 0.5},
    )


def hdr(**extra: str) -> dict[str, str]:
    token = mint_token(SECRET, "system/*.write system/*.read", "writer")
    return {"Authorization": f"Bearer {token}", "content-type": "application/fhir+json",
            "X-Request-ID": f"w-{uid()}", **extra}  # fmt: skip


@pytest.fixture
def write(api: TestClient, store: tuple[FhirStore, Offsets], appended) -> Callable[..., Any]:
    """write(method, url, body, reply, **headers): the answer, the processors played by `reply`."""
    writable, offsets = store

    def run(method: str, url: str, body: Any, reply: Reply | None, **headers: str) -> Any:
        h = hdr(**headers)
        answer: list[Any] = []
        content = None if body is None else orjson.dumps(body)
        thread = threading.Thread(
            target=lambda: answer.append(api.request(method, url, content=content, headers=h))
        )
        thread.start()
        if reply is not None:
            deadline = time.monotonic() + 10
            found: list[Any] = []
            while not found and time.monotonic() < deadline:
                found = [e for _, e in appended(Format.fhir, h["X-Request-ID"])]
                time.sleep(0.05)
            assert found, "the gateway appended nothing"
            writable.applier().apply(offsets.records(reply(found[0])))
        thread.join(15)
        return answer[0]

    return run


def version_conflict(event: InboundMessage) -> list[Any]:
    outcome = {"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "conflict", "diagnostics": "If-Match expects 1, current is 2"}]}  # fmt: skip
    return [Rejected(event_id=str(uid()), rejected_at=event.received_at, stage="version",
                     reason="conflict", operation_outcome=orjson.dumps(outcome).decode(),
                     original=b"", original_event_id=event.event_id)]  # fmt: skip


def test_create_answers_201_with_location_etag_and_the_resource(write: Callable[..., Any]) -> None:
    body = {"resourceType": "Patient", "name": [{"family": "Created"}]}

    def processors(event: InboundMessage) -> list[Any]:
        new = {**body, "id": resource_id("Patient", event.event_id)}
        return [changed(new, 1, inbound_event_id=event.event_id)]

    answer = write("POST", "/fhir/Patient", body, processors)
    assert answer.status_code == 201, answer.text
    pid = resource_id("Patient", answer.headers["x-event-id"])
    assert answer.headers["location"] == f"http://testserver/fhir/Patient/{pid}/_history/1"
    assert answer.headers["etag"] == 'W/"1"'
    assert answer.json()["id"] == pid and answer.json()["meta"]["versionId"] == "1"


def test_update_200_unchanged_200_stale_412_delete_204(
    write: Callable[..., Any], api: TestClient
) -> None:
    pid = f"u{uid()}"
    v1 = {"resourceType": "Patient", "id": pid, "gender": "male"}
    first = write("PUT", f"/fhir/Patient/{pid}", v1,
                  lambda e: [changed(v1, 1, inbound_event_id=e.event_id)])  # fmt: skip
    assert first.status_code == 201 and first.headers["etag"] == 'W/"1"'
    v2 = {**v1, "gender": "female"}
    second = write("PUT", f"/fhir/Patient/{pid}", v2,
                   lambda e: [changed(v2, 2, inbound_event_id=e.event_id)], **{"If-Match": 'W/"1"'})  # fmt: skip
    assert second.status_code == 200 and second.headers["etag"] == 'W/"2"'
    assert second.json()["gender"] == "female"
    # Same content again: the versioning stage appends nothing; answered with version 2.
    started = time.monotonic()
    same = write("PUT", f"/fhir/Patient/{pid}", v2, None)
    assert same.status_code == 200 and same.headers["etag"] == 'W/"2"'
    assert time.monotonic() - started < 3
    stale = write("PUT", f"/fhir/Patient/{pid}", {**v2, "gender": "other"}, version_conflict,
                  **{"If-Match": 'W/"1"'})  # fmt: skip
    assert stale.status_code == 412 and stale.json()["issue"][0]["code"] == "conflict"
    gone = write("DELETE", f"/fhir/Patient/{pid}", None,
                 lambda e: [changed(v2, 3, delete=True, inbound_event_id=e.event_id)])  # fmt: skip
    assert gone.status_code == 204 and gone.headers["etag"] == 'W/"3"'
    assert api.get(f"/fhir/Patient/{pid}", headers=hdr()).status_code == 410


def test_a_rejected_write_answers_its_outcome(write: Callable[..., Any]) -> None:
    def invalid(event: InboundMessage) -> list[Any]:
        outcome = {"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "code-invalid", "diagnostics": "status: bad code"}]}  # fmt: skip
        return [Rejected(event_id=uid(), rejected_at=event.received_at, stage="translate",
                         reason="bad", operation_outcome=orjson.dumps(outcome).decode(),
                         original=b"", original_event_id=event.event_id)]  # fmt: skip

    answer = write(
        "POST", "/fhir/Observation", {"resourceType": "Observation", "status": "x"}, invalid
    )
    assert answer.status_code == 422
    assert answer.json()["issue"][0]["diagnostics"] == "status: bad code"


def test_transaction_answers_a_transaction_response(write: Callable[..., Any]) -> None:
    pid = f"t{uid()}"
    patient = {"resourceType": "Patient", "id": pid}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient, "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"}},
         "request": {"method": "POST", "url": "Observation"}},
    ]}  # fmt: skip

    def processors(event: InboundMessage) -> list[Any]:
        oid = resource_id("Observation", event.event_id, "1")
        obs = {**bundle["entry"][1]["resource"], "id": oid}  # type: ignore[index]
        return [changed(obs, 1, inbound_event_id=event.event_id),
                changed(patient, 1, inbound_event_id=event.event_id)]  # fmt: skip

    answer = write("POST", "/fhir", bundle, processors)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["type"] == "transaction-response"
    assert [e["response"]["status"] for e in body["entry"]] == ["201", "201"]
    assert body["entry"][0]["response"]["location"].endswith(f"Patient/{pid}/_history/1")
    assert "/Observation/" in body["entry"][1]["response"]["location"]


def test_respond_async_and_timeout_answer_202(write: Callable[..., Any]) -> None:
    quick = write(
        "POST", "/fhir/Patient", {"resourceType": "Patient"}, None, Prefer="respond-async"
    )
    assert quick.status_code == 202 and quick.headers["x-event-id"]
    started = time.monotonic()
    late = write("POST", "/fhir/Patient", {"resourceType": "Patient"}, None)
    assert late.status_code == 202 and 3.5 < time.monotonic() - started < 10
    assert "not shown it yet" in late.json()["issue"][0]["diagnostics"]
