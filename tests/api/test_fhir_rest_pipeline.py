"""Read-your-writes through the whole pipeline: the gateway appends, a real `carelog worker`
versions, a real `carelog projection` applies, and the gateway answers from the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from api.dev_token import mint_token
from projections.fhir_store import FhirStore
from streams.settings import PROJECT_ROOT, Settings
from tests.api.conftest import SECRET
from tests.processors.worker_harness import Worker
from tests.projections.fhir_store_support import uid

pytestmark = pytest.mark.kafka
SCOPES = "system/*.write system/*.read"


@pytest.fixture(scope="module")
def store_path(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """A worker and a projection for the module; the path of the store the projection keeps."""
    root = tmp_path_factory.mktemp("pipeline")
    path = root / "store.sqlite"
    worker = Worker(root / "worker")
    worker.start()
    with (root / "projection.log").open("ab") as log:
        projection = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "projection", "--store", str(path)],
            cwd=PROJECT_ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.exists(), (root / "projection.log").read_text()
        yield path
    finally:
        projection.terminate()
        projection.wait(30)
        worker.stop()


@pytest.fixture(scope="module")
def api(store_path: Path, make_client: Callable[..., TestClient]) -> TestClient:
    client = make_client(fhir_store_path=store_path, fhir_write_wait_seconds=60.0,
                         fhir_write_unchanged_seconds=8.0)  # fmt: skip
    # Warm up: a fresh broker's worker takes a while to join its group and start its
    # transactions. Wait (once per module) until a first write has come through.
    warm = client.post("/fhir/Patient", content=b'{"resourceType": "Patient"}',
                       headers=hdr(Prefer="respond-async"))  # fmt: skip
    event_id = warm.headers["x-event-id"]
    with FhirStore.open(store_path, readonly=True) as store:
        deadline = time.monotonic() + 180
        while not store.change_for_inbound(event_id) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert store.change_for_inbound(event_id), "the pipeline never applied a first write"
    return client


def hdr(**extra: str) -> dict[str, str]:
    token = mint_token(SECRET, SCOPES, "pipeline-test")
    return {"Authorization": f"Bearer {token}", "content-type": "application/fhir+json", **extra}


def test_a_write_appears_on_a_read_right_after_201(api: TestClient) -> None:
    family = f"Fam{uid()}"
    patient = {"resourceType": "Patient", "name": [{"family": family}], "gender": "female"}
    created = api.post("/fhir/Patient", content=orjson.dumps(patient), headers=hdr())
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert created.headers["etag"] == 'W/"1"' and location.endswith("/_history/1")
    pid = created.json()["id"]
    assert location == f"http://testserver/fhir/Patient/{pid}/_history/1"

    read = api.get(f"/fhir/Patient/{pid}", headers=hdr())
    assert read.status_code == 200
    assert read.headers["etag"] == created.headers["etag"]
    assert read.json()["name"] == [{"family": family}]
    assert api.get(location.removeprefix("http://testserver"), headers=hdr()).status_code == 200

    # Update, stale If-Match, unchanged content, delete.
    body = {**patient, "id": pid, "gender": "male"}
    updated = api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(body),
                      headers=hdr(**{"If-Match": 'W/"1"'}))  # fmt: skip
    assert updated.status_code == 200, updated.text
    assert updated.headers["etag"] == 'W/"2"' and updated.json()["gender"] == "male"
    stale = api.put(f"/fhir/Patient/{pid}", content=orjson.dumps({**body, "gender": "other"}),
                    headers=hdr(**{"If-Match": 'W/"1"'}))  # fmt: skip
    assert stale.status_code == 412, stale.text
    assert stale.json()["issue"][0]["code"] == "conflict"
    same = api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(body), headers=hdr())
    assert same.status_code == 200 and same.headers["etag"] == 'W/"2"'
    deleted = api.delete(f"/fhir/Patient/{pid}", headers=hdr())
    assert deleted.status_code == 204 and deleted.headers["etag"] == 'W/"3"'
    assert api.get(f"/fhir/Patient/{pid}", headers=hdr()).status_code == 410


def test_invalid_write_answers_the_downstream_outcome_and_async_answers_202(
    api: TestClient,
) -> None:
    bad = {"resourceType": "Observation", "status": "not-a-status", "code": {"text": "x"}}
    refused = api.post("/fhir/Observation", content=orjson.dumps(bad), headers=hdr())
    assert refused.status_code in (400, 422), refused.text
    assert refused.json()["resourceType"] == "OperationOutcome"
    quick = api.post("/fhir/Patient", content=b'{"resourceType": "Patient"}',
                     headers=hdr(Prefer="respond-async"))  # fmt: skip
    assert quick.status_code == 202 and quick.headers["x-event-id"]


def test_terminology_is_checked_on_rest_writes_too(api: TestClient) -> None:
    """The worker's one validator: a LOINC check-digit typo and a unit that is not UCUM are
    refused on a FHIR write as they are on an HL7 v2 result, naming the element and code."""
    heart_rate = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-5"}]},
        "valueQuantity": {"value": 72, "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    refused = api.post("/fhir/Observation", content=orjson.dumps(heart_rate), headers=hdr())
    assert 400 <= refused.status_code < 500, refused.text
    outcome = refused.json()
    assert outcome["resourceType"] == "OperationOutcome"
    [issue] = outcome["issue"]
    assert issue["expression"] == ["Observation.code.coding[0].code"]
    assert "8867-5" in issue["diagnostics"] and issue["code"] == "code-invalid"

    oid = f"o{uid()}"
    furlongs = {**heart_rate, "id": oid, "code": {"text": "distance walked"},
                "valueQuantity": {"value": 3, "system": "http://unitsofmeasure.org", "code": "furlongs"}}  # fmt: skip
    refused = api.put(f"/fhir/Observation/{oid}", content=orjson.dumps(furlongs), headers=hdr())
    assert 400 <= refused.status_code < 500, refused.text
    [issue] = refused.json()["issue"]
    assert issue["expression"] == ["Observation.valueQuantity.code"]
    assert "furlongs" in issue["diagnostics"]


def test_transaction_answers_a_transaction_response(api: TestClient) -> None:
    pid = f"t{uid()}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a",
         "resource": {"resourceType": "Patient", "id": pid, "name": [{"family": "Tx"}]},
         "request": {"method": "PUT", "url": f"Patient/{pid}"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "hb"},
                      "subject": {"reference": f"Patient/{pid}"}},
         "request": {"method": "POST", "url": "Observation"}},
    ]}  # fmt: skip
    answer = api.post("/fhir", content=orjson.dumps(bundle), headers=hdr())
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in body["entry"]]
    assert statuses == ["201", "201"]
    obs_location = body["entry"][1]["response"]["location"].removeprefix("http://testserver")
    observation = api.get(obs_location, headers=hdr())
    assert observation.status_code == 200
    assert observation.json()["subject"] == {"reference": f"Patient/{pid}"}
