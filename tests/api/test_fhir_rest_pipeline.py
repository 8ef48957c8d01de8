"""Read-your-writes through the whole pipeline: the gateway appends, a real `carelog worker`
versions, a real `carelog projection` applies, and the gateway answers from the store."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.security.dev_token import mint_token
from projections.fhir_store import FhirStore
from streams.settings import PROJECT_ROOT, Settings
from tests.api.conftest import SECRET
from tests.processors.worker_harness import SharedWorker
from tests.projections.fhir_store_support import uid

pytestmark = pytest.mark.kafka
SCOPES = "system/*.write system/*.read"


@pytest.fixture(scope="module")
def store_path(
    kafka_settings: Settings, shared_worker: SharedWorker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The shared worker and a projection for the module; the path of the store the
    projection keeps."""
    root = tmp_path_factory.mktemp("pipeline")
    path = root / "store.sqlite"
    shared_worker.running(lambda: root / "worker")
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


@pytest.fixture(scope="module")
def api(store_path: Path, make_client: Callable[..., TestClient]) -> TestClient:
    client = make_client(
        store={"path": store_path},
        fhir={"write_wait_seconds": 60.0, "write_unchanged_seconds": 8.0},
    )
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


# --- conditional create (If-None-Exist) and If-None-Match: * ---------------------------


def _patient(system: str, value: str, **extra: object) -> dict[str, object]:
    return {"resourceType": "Patient", "identifier": [{"system": system, "value": value}],
            **extra}  # fmt: skip


def _versions(api: TestClient, key: str) -> list[str]:
    history = api.get(f"/fhir/{key}/_history", headers=hdr())
    assert history.status_code == 200, history.text
    return [e["resource"]["meta"]["versionId"] for e in history.json().get("entry", [])]


def _found(api: TestClient, query: str) -> list[str]:
    found = api.get(f"/fhir/Patient?{query}", headers=hdr())
    assert found.status_code == 200, found.text
    return [e["resource"]["id"] for e in found.json().get("entry", [])]


def test_concurrent_conditional_creates_make_one_resource_with_one_version(
    api: TestClient,
) -> None:
    """20 clients send the same conditional create at once (each body a little different,
    as each client's copy would be): one resource, version 1, whatever each one's answer."""
    system, value = "urn:oid:2.16.840.1.113883.19.5", f"C{uid()}"
    criteria = {"If-None-Exist": f"identifier={system}|{value}"}

    def post(n: int) -> Any:
        body = _patient(system, value, name=[{"family": "Concurrent", "given": [f"N{n}"]}])
        return api.post("/fhir/Patient", content=orjson.dumps(body), headers=hdr(**criteria))

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(post, range(20)))
    assert {a.status_code for a in answers} <= {200, 201}, [a.text for a in answers]
    assert [a.status_code for a in answers].count(201) <= 1
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1, ids
    [pid] = ids
    assert {a.headers["etag"] for a in answers} == {'W/"1"'}
    assert _found(api, f"identifier={system}|{value}") == [pid]
    assert _versions(api, f"Patient/{pid}") == ["1"]


def test_a_conditional_create_that_matches_one_resource_answers_it_and_writes_nothing(
    api: TestClient,
) -> None:
    system, value, pid = "urn:oid:1.2.36.146.595", f"M{uid()}", f"m{uid()}"
    existing = {**_patient(system, value), "id": pid, "gender": "female"}
    put = api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(existing), headers=hdr())
    assert put.status_code == 201, put.text
    other = _patient(system, value, gender="male")
    for criteria in (f"identifier={system}|{value}", f"identifier={value}"):
        answer = api.post("/fhir/Patient", content=orjson.dumps(other),
                          headers=hdr(**{"If-None-Exist": criteria}))  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == pid and answer.json()["gender"] == "female"
        assert answer.headers["etag"] == 'W/"1"' and "x-event-id" not in answer.headers
        assert answer.headers["location"].endswith(f"/Patient/{pid}/_history/1")
    assert _versions(api, f"Patient/{pid}") == ["1"]
    assert _found(api, f"identifier={system}|{value}") == [pid]


def test_a_match_is_not_shown_to_a_token_that_may_not_read_it(api: TestClient) -> None:
    """A write-only token learns where the match is (Location, ETag), not what it holds."""
    system, value, pid = "urn:oid:1.2.36.146.595", f"W{uid()}", f"w{uid()}"
    existing = {**_patient(system, value), "id": pid, "birthDate": "1950-05-05"}
    assert api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(existing),
                   headers=hdr()).status_code == 201  # fmt: skip
    writer = mint_token(SECRET, "system/Patient.write", "write-only")
    headers = {**hdr(**{"If-None-Exist": f"identifier={system}|{value}"}),
               "Authorization": f"Bearer {writer}"}  # fmt: skip
    answer = api.post("/fhir/Patient", content=orjson.dumps(_patient(system, value)),
                      headers=headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    assert answer.content == b"" and answer.headers["location"].endswith(
        f"/Patient/{pid}/_history/1"
    )


def test_a_conditional_create_that_matches_several_answers_412_kept_on_the_log(
    api: TestClient, appended: Callable[..., Any]
) -> None:
    system, value = "urn:oid:1.2.36.146.595", f"D{uid()}"
    for pid in (f"a{uid()}", f"b{uid()}"):
        body = {**_patient(system, value), "id": pid}
        assert api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(body),
                       headers=hdr()).status_code == 201  # fmt: skip
    request_id = f"dup-{uid()}"
    answer = api.post("/fhir/Patient", content=orjson.dumps(_patient(system, value)),
                      headers=hdr(**{"If-None-Exist": f"identifier={system}|{value}",
                                     "X-Request-ID": request_id}))  # fmt: skip
    assert answer.status_code == 412, answer.text
    issue = answer.json()["issue"][0]
    assert issue["code"] == "multiple-matches" and "more than one Patient" in issue["diagnostics"]
    assert len(_found(api, f"identifier={system}|{value}")) == 2
    assert [e.stage for _, e in appended("rejected", request_id)] == ["gateway"]


def test_a_conditional_create_whose_criteria_id_no_longer_matches_creates_anew(
    api: TestClient,
) -> None:
    """A resource created by conditional create, then edited so that it no longer matches
    its criteria: the same conditional create again creates a new resource (not a silent
    200 with the edited one, which would drop what the client sent)."""
    system, old, new = "urn:oid:1.2.36.146.595", f"O{uid()}", f"N{uid()}"
    criteria = {"If-None-Exist": f"identifier={system}|{old}"}
    first = api.post("/fhir/Patient", content=orjson.dumps(_patient(system, old)),
                     headers=hdr(**criteria))  # fmt: skip
    assert first.status_code == 201, first.text
    pid = first.json()["id"]
    edited = {**_patient(system, new), "id": pid}
    assert api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(edited),
                   headers=hdr()).status_code == 200  # fmt: skip
    again = api.post("/fhir/Patient", content=orjson.dumps(_patient(system, old, gender="male")),
                     headers=hdr(**criteria))  # fmt: skip
    assert again.status_code == 201, again.text
    assert again.json()["id"] != pid and again.json()["gender"] == "male"
    assert _found(api, f"identifier={system}|{old}") == [again.json()["id"]]
    assert _versions(api, f"Patient/{pid}") == ["2", "1"]


def test_conditional_create_by_other_criteria_creates_once_then_finds_it(
    api: TestClient,
) -> None:
    family = f"Crit{uid()}"
    body = {"resourceType": "Patient", "name": [{"family": family}], "birthDate": "1970-01-01"}
    criteria = {"If-None-Exist": f"family={family}&birthdate=1970-01-01"}
    first = api.post("/fhir/Patient", content=orjson.dumps(body), headers=hdr(**criteria))
    assert first.status_code == 201, first.text
    again = api.post("/fhir/Patient", content=orjson.dumps(body), headers=hdr(**criteria))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    unknown = api.post("/fhir/Patient", content=orjson.dumps(body),
                       headers=hdr(**{"If-None-Exist": "no-such-param=1"}))  # fmt: skip
    assert unknown.status_code == 400, unknown.text
    assert "no-such-param" in unknown.json()["issue"][0]["diagnostics"]
    assert _found(api, f"family={family}") == [first.json()["id"]]


def test_if_none_match_star_creates_but_never_replaces(api: TestClient) -> None:
    pid = f"n{uid()}"
    body = {"resourceType": "Patient", "id": pid, "gender": "female"}
    star = {"If-None-Match": "*"}
    created = api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(body), headers=hdr(**star))
    assert created.status_code == 201, created.text
    for sent in (body, {**body, "gender": "male"}):
        refused = api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(sent), headers=hdr(**star))
        assert refused.status_code == 412, refused.text
        assert "If-None-Match" in refused.json()["issue"][0]["diagnostics"]
    assert _versions(api, f"Patient/{pid}") == ["1"]
    matched = api.put(f"/fhir/Patient/{pid}", content=orjson.dumps({**body, "gender": "male"}),
                      headers=hdr(**{"If-Match": 'W/"1"'}))  # fmt: skip
    assert matched.status_code == 200 and matched.headers["etag"] == 'W/"2"'


def test_a_transaction_entry_that_matches_resolves_to_the_existing_resource(
    api: TestClient,
) -> None:
    """The matched Patient is left as it is; the Observation refers to it, not to a copy."""
    system, value, pid = "urn:oid:1.2.36.146.595", f"T{uid()}", f"x{uid()}"
    existing = {**_patient(system, value), "id": pid, "gender": "female"}
    assert api.put(f"/fhir/Patient/{pid}", content=orjson.dumps(existing),
                   headers=hdr()).status_code == 201  # fmt: skip
    full_url = f"urn:uuid:{uuid.uuid4()}"
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": full_url, "resource": _patient(system, value, gender="male"),
         "request": {"method": "POST", "url": "Patient",
                     "ifNoneExist": f"identifier={system}|{value}"}},
        {"resource": {"resourceType": "Observation", "status": "final", "code": {"text": "hb"},
                      "subject": {"reference": full_url}},
         "request": {"method": "POST", "url": "Observation"}},
    ]}  # fmt: skip
    answer = api.post("/fhir", content=orjson.dumps(bundle), headers=hdr())
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entry"]
    assert [e["response"]["status"] for e in entries] == ["200", "201"]
    assert entries[0]["response"]["location"].endswith(f"/Patient/{pid}/_history/1")
    location = entries[1]["response"]["location"].removeprefix("http://testserver")
    observation = api.get(location, headers=hdr()).json()
    assert observation["subject"] == {"reference": f"Patient/{pid}"}
    assert _found(api, f"identifier={system}|{value}") == [pid]
    assert _versions(api, f"Patient/{pid}") == ["1"]


def test_metadata_claims_the_conditional_interactions_that_work(api: TestClient) -> None:
    statement = api.get("/fhir/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert patient["conditionalCreate"] is True
    assert patient["conditionalUpdate"] is False
    assert patient["conditionalDelete"] == "not-supported"
    documentation = statement["rest"][0]["documentation"]
    assert "If-None-Exist" in documentation and "If-None-Match: *" in documentation
    # what is claimed unsupported is refused, not done some other way
    update = api.put("/fhir/Patient?identifier=a|1", content=b'{"resourceType": "Patient"}',
                     headers=hdr())  # fmt: skip
    assert update.status_code in (404, 405), update.text
