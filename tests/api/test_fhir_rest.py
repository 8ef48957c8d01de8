"""FHIR REST reads against a real store (built with the projection's apply) and the real
broker (AuditEvents): read, vread, history, search and paging, _include, _summary=count,
$everything, metadata, 304, 404, 410, 406, SMART scopes and patient compartments."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.fhir.audit_event import audit_event
from api.fhir.write_targets import resource_id as api_resource_id
from api.security.auth import Principal
from api.security.dev_token import mint_token
from processors.ids import resource_id
from schemas.events import ResourceChanged
from tests.api.conftest import SECRET
from tests.processors.r4b import assert_valid_r4b
from tests.projections.fhir_store_support import changed, uid, write_store

pytestmark = pytest.mark.kafka
READ_ALL = "user/*.read"


class Data:
    """Two patients, observations of the first, a practitioner, a deleted resource."""

    def __init__(self) -> None:
        self.p1, self.p2, self.gone, self.doc = f"p1{uid()}", f"p2{uid()}", f"x{uid()}", f"d{uid()}"
        self.obs = [f"o{i}{uid()}" for i in range(5)]
        self.other_obs = f"q{uid()}"

    def events(self) -> list[Any]:
        def obs(oid: str, pid: str, n: int) -> dict[str, Any]:
            return {"resourceType": "Observation", "id": oid, "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                    "subject": {"reference": f"Patient/{pid}"},
                    "performer": [{"reference": f"Practitioner/{self.doc}"}],
                    "valueQuantity": {"value": 10 + n, "unit": "g/dL"}}  # fmt: skip

        p1 = {"resourceType": "Patient", "id": self.p1, "name": [{"family": "Alpha"}]}
        return [
            changed(p1, 1),
            changed({**p1, "name": [{"family": "Alphonse"}]}, 2),
            changed({"resourceType": "Patient", "id": self.p2, "name": [{"family": "Beta"}]}, 1),
            changed(
                {"resourceType": "Practitioner", "id": self.doc, "name": [{"family": "Doc"}]}, 1
            ),
            *(changed(obs(o, self.p1, n), 1) for n, o in enumerate(self.obs)),
            changed(obs(self.other_obs, self.p2, 9), 1),
            changed({"resourceType": "Patient", "id": self.gone}, 1),
            changed({"resourceType": "Patient", "id": self.gone}, 2, delete=True),
        ]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Data, Path]]:
    path = tmp_path_factory.mktemp("fhir-rest") / "store.sqlite"
    d = Data()
    write_store(path, d.events())
    yield d, path


@pytest.fixture(scope="module")
def api(data: tuple[Data, Path], make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(
        store={"path": data[1]}, fhir={"write_unchanged_seconds": 0.3, "write_wait_seconds": 5.0}
    )


@pytest.fixture(scope="module")
def d(data: tuple[Data, Path]) -> Data:
    return data[0]


def hdr(scopes: str = READ_ALL, patient: str | None = None, **extra: str) -> dict[str, str]:
    token = mint_token(SECRET, scopes, "reader-app", patient=patient)
    return {"Authorization": f"Bearer {token}", "X-Request-ID": f"t-{uid()}", **extra}


def outcome(response: Any) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"]


def ids(bundle: dict[str, Any], mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == mode]


def test_read_serves_the_stored_json_with_etag_and_last_modified(api: TestClient, d: Data) -> None:
    response = api.get(f"/fhir/Patient/{d.p1}", headers=hdr())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/fhir+json"
    assert response.headers["etag"] == 'W/"2"'
    assert response.headers["last-modified"] == "Mon, 01 Jan 2024 00:00:02 GMT"
    body = response.json()
    assert body["name"] == [{"family": "Alphonse"}] and body["meta"]["versionId"] == "2"


def test_vread_and_conditional_reads(api: TestClient, d: Data) -> None:
    v1 = api.get(f"/fhir/Patient/{d.p1}/_history/1", headers=hdr())
    assert v1.status_code == 200 and v1.json()["name"] == [{"family": "Alpha"}]
    assert v1.headers["etag"] == 'W/"1"'
    assert api.get(f"/fhir/Patient/{d.p1}/_history/9", headers=hdr()).status_code == 404
    same = api.get(f"/fhir/Patient/{d.p1}", headers=hdr(**{"If-None-Match": 'W/"2"'}))
    assert same.status_code == 304 and same.content == b""
    stale = api.get(f"/fhir/Patient/{d.p1}", headers=hdr(**{"If-None-Match": 'W/"1"'}))
    assert stale.status_code == 200
    later = api.get(f"/fhir/Patient/{d.p1}",
                    headers=hdr(**{"If-Modified-Since": "Mon, 01 Jan 2024 00:00:02 GMT"}))  # fmt: skip
    assert later.status_code == 304
    earlier = api.get(f"/fhir/Patient/{d.p1}",
                      headers=hdr(**{"If-Modified-Since": "Mon, 01 Jan 2024 00:00:01 GMT"}))  # fmt: skip
    assert earlier.status_code == 200


def test_unknown_404_deleted_410_and_unserved_formats_406(api: TestClient, d: Data) -> None:
    missing = api.get(f"/fhir/Patient/nobody{uid()}", headers=hdr())
    assert missing.status_code == 404 and outcome(missing)[0]["code"] == "not-found"
    gone = api.get(f"/fhir/Patient/{d.gone}", headers=hdr())
    assert gone.status_code == 410 and outcome(gone)[0]["code"] == "deleted"
    xml = api.get(f"/fhir/Patient/{d.p1}", headers=hdr(Accept="application/fhir+xml"))
    assert xml.status_code == 406 and outcome(xml)[0]["code"] == "not-supported"
    assert api.get(f"/fhir/Patient/{d.p1}?_format=xml", headers=hdr()).status_code == 406
    ok = api.get(f"/fhir/Patient/{d.p1}?_format=json", headers=hdr(Accept="application/xml"))
    assert ok.status_code == 200
    assert (
        api.get(f"/fhir/Patient/{d.p1}", headers=hdr(Accept="application/json")).status_code == 200
    )
    bad_id = api.get("/fhir/Patient/not_an_id", headers=hdr())
    assert bad_id.status_code == 400 and outcome(bad_id)


def test_history_instance_type_and_system(api: TestClient, d: Data) -> None:
    instance = api.get(f"/fhir/Patient/{d.p1}/_history", headers=hdr()).json()
    assert instance["type"] == "history" and instance["total"] == 2
    assert [e["resource"]["meta"]["versionId"] for e in instance["entry"]] == ["2", "1"]
    assert instance["entry"][0]["request"] == {"method": "PUT", "url": f"Patient/{d.p1}"}
    deleted = api.get(f"/fhir/Patient/{d.gone}/_history", headers=hdr()).json()
    assert deleted["entry"][0]["request"]["method"] == "DELETE"
    assert "resource" not in deleted["entry"][0]
    typed = api.get("/fhir/Practitioner/_history?_count=1000", headers=hdr()).json()
    assert any(e["fullUrl"].endswith(f"Practitioner/{d.doc}") for e in typed["entry"])
    system = api.get("/fhir/_history?_count=2", headers=hdr()).json()
    assert len(system["entry"]) == 2 and system["total"] >= 12
    assert any(link["relation"] == "next" for link in system["link"])
    assert api.get(f"/fhir/Patient/none{uid()}/_history", headers=hdr()).status_code == 404


def test_search_pages_with_total_self_and_next(api: TestClient, d: Data) -> None:
    seen: list[str] = []
    url: str | None = f"/fhir/Observation?subject=Patient/{d.p1}&_count=2"
    pages = 0
    while url:
        bundle = api.get(url, headers=hdr()).json()
        assert bundle["type"] == "searchset" and bundle["total"] == 5
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert links["self"].startswith("http://testserver/fhir/Observation?")
        seen += ids(bundle)
        url = links.get("next", "").removeprefix("http://testserver") or None
        pages += 1
    assert pages == 3 and sorted(seen) == sorted(d.obs)


def test_search_include_summary_count_and_post(api: TestClient, d: Data) -> None:
    query = f"subject=Patient/{d.p1}&_include=Observation:subject&_count=10"
    bundle = api.get(f"/fhir/Observation?{query}", headers=hdr()).json()
    assert ids(bundle, "include") == [d.p1]
    count = api.get(
        f"/fhir/Observation?subject=Patient/{d.p1}&_summary=count", headers=hdr()
    ).json()
    assert count["total"] == 5 and not count.get("entry")
    posted = api.post("/fhir/Observation/_search", content=query.encode(),
                      headers=hdr(**{"content-type": "application/x-www-form-urlencoded"}))  # fmt: skip
    assert posted.status_code == 200 and ids(posted.json()) == ids(bundle)
    bad = api.get("/fhir/Observation?nonsense=1", headers=hdr())
    assert bad.status_code == 400 and outcome(bad)[0]["expression"] == ["nonsense"]


def test_patient_everything(api: TestClient, d: Data) -> None:
    bundle = api.get(f"/fhir/Patient/{d.p1}/$everything", headers=hdr()).json()
    assert sorted(ids(bundle)) == sorted([d.p1, *d.obs])
    assert api.get(f"/fhir/Patient/{d.gone}/$everything", headers=hdr()).status_code == 410


def test_metadata_and_smart_configuration_need_no_token(api: TestClient) -> None:
    cap = api.get("/fhir/metadata").json()
    assert cap["resourceType"] == "CapabilityStatement" and cap["fhirVersion"] == "4.0.1"
    [rest] = cap["rest"]
    patient = next(r for r in rest["resource"] if r["type"] == "Patient")
    assert {"read", "vread", "search-type", "history-instance"} <= {
        i["code"] for i in patient["interaction"]
    }
    assert {"name", "birthdate", "_id", "_lastUpdated"} <= {
        p["name"] for p in patient["searchParam"]
    }
    assert patient["operation"][0]["name"] == "everything"
    assert rest["security"]["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        config = api.get(path).json()
        assert "permission-patient" in config["capabilities"]


def test_scopes_are_required_on_every_read(api: TestClient, d: Data) -> None:
    assert api.get(f"/fhir/Patient/{d.p1}").status_code == 401
    for scopes in ("system/*.write", "user/Observation.read", "user/Patient.s",
                   "patient/Patient.read"):  # the last has no patient context  # fmt: skip
        denied = api.get(f"/fhir/Patient/{d.p1}", headers=hdr(scopes))
        assert denied.status_code == 403, scopes
        assert outcome(denied)[0]["code"] == "forbidden"
    assert api.get("/fhir/Patient?_count=1", headers=hdr("user/Patient.r")).status_code == 403
    for scopes in ("user/Patient.read", "system/Patient.rs", "user/*.r", "system/*.*"):
        assert api.get(f"/fhir/Patient/{d.p1}", headers=hdr(scopes)).status_code == 200, scopes
    everything = api.get(f"/fhir/Patient/{d.p1}/$everything", headers=hdr("user/Patient.read"))
    assert everything.status_code == 403  # it returns Observations too


def test_a_patient_context_sees_only_its_compartment(api: TestClient, d: Data) -> None:
    mine = hdr("patient/*.read", patient=d.p1)
    assert api.get(f"/fhir/Patient/{d.p1}", headers=mine).status_code == 200
    assert api.get(f"/fhir/Observation/{d.obs[0]}", headers=mine).status_code == 200
    assert api.get(f"/fhir/Patient/{d.p2}", headers=mine).status_code == 404
    assert api.get(f"/fhir/Observation/{d.other_obs}", headers=mine).status_code == 404
    assert api.get(f"/fhir/Observation/{d.other_obs}/_history/1", headers=mine).status_code == 404
    assert api.get(f"/fhir/Practitioner/{d.doc}", headers=mine).status_code == 403
    found = api.get(
        "/fhir/Observation?_count=100&_include=Observation:performer", headers=mine
    ).json()
    assert sorted(ids(found)) == sorted(d.obs) and ids(found, "include") == []
    assert ids(api.get("/fhir/Patient", headers=mine).json()) == [d.p1]
    assert api.get(f"/fhir/Patient/{d.p2}/$everything", headers=mine).status_code == 404
    assert api.get("/fhir/Observation/_history", headers=mine).status_code == 403
    # user/ scopes do not widen a token that carries a patient context
    wide = hdr("user/*.read", patient=d.p1)
    assert api.get(f"/fhir/Patient/{d.p2}", headers=wide).status_code == 404


def _audits(appended: Callable[..., list[Any]], request_id: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15  # appended in the background, after the answer
    while time.monotonic() < deadline:
        found = appended("audit", request_id)
        if found:
            return [orjson.loads(e.resource or "") for _, e in found if isinstance(e, ResourceChanged)
                    and e.resource_type == "AuditEvent"]  # fmt: skip
        time.sleep(0.2)
    return []


def test_reads_and_searches_append_an_audit_event(
    api: TestClient, d: Data, appended: Callable[..., Any]
) -> None:
    headers = hdr()
    assert api.get(f"/fhir/Patient/{d.p1}", headers=headers).status_code == 200
    [event] = _audits(appended, headers["X-Request-ID"])
    assert event["resourceType"] == "AuditEvent" and event["action"] == "R"
    assert event["entity"][0]["what"] == {"reference": f"Patient/{d.p1}"}
    assert event["agent"][0]["who"]["identifier"]["value"] == "reader-app"
    assert event["agent"][0]["network"]["address"] == "testclient"
    headers = hdr()
    api.get(f"/fhir/Observation?subject=Patient/{d.p1}", headers=headers)
    [event] = _audits(appended, headers["X-Request-ID"])
    assert event["action"] == "E" and event["subtype"][0]["code"] == "search-type"
    assert event["entity"][-1]["description"].startswith("Observation?subject=Patient")


def test_audit_event_is_valid_r4() -> None:
    event = audit_event(Principal("app", frozenset(), "p1"), "search-type", "10.0.0.1",
                        ["Patient/p1"], "Patient?_id=p1")  # fmt: skip
    assert_valid_r4b({**event, "id": "a1"})


def test_the_gateway_predicts_the_ids_the_processors_assign() -> None:
    for parts in [("Patient", "e1"), ("Observation", "e2", "3"), ("Patient", " urn:x ", "v")]:
        assert api_resource_id(*parts) == resource_id(*parts)
