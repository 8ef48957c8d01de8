"""Read-side access control over a real store and the real broker (AuditEvents of the reads):
old versions stay in the compartment they were in, a patient-context token gets no
AuditEvents by any route, and what _include/_revinclude adds needs the token's read scope."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.fhir.audit_event import audit_event
from api.security.auth import Principal
from api.security.dev_token import mint_token
from tests.api.conftest import SECRET
from tests.projections.fhir_store_support import changed, uid, write_store

pytestmark = pytest.mark.kafka


class Data:
    """Patients A and B; a result misfiled under B and moved to A; audit events naming both."""

    def __init__(self) -> None:
        self.a, self.b, self.moved = f"pa{uid()}", f"pb{uid()}", f"om{uid()}"
        self.audit_both, self.audit_a = f"ae{uid()}", f"ae{uid()}"

    def events(self) -> list[Any]:
        def result(patient: str, value: int) -> dict[str, Any]:
            return {"resourceType": "Observation", "id": self.moved, "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
                    "subject": {"reference": f"Patient/{patient}"},
                    "valueQuantity": {"value": value, "unit": "g/dL"}}  # fmt: skip

        admin = Principal("admin", frozenset())
        both = audit_event(admin, "search-type", "10.0.0.9",
                           [f"Patient/{self.a}", f"Patient/{self.b}"], "Patient?identifier=mrn|B-1")  # fmt: skip
        only_a = audit_event(admin, "read", "10.0.0.9", [f"Patient/{self.a}"], None)
        return [
            changed({"resourceType": "Patient", "id": self.a, "name": [{"family": "Able"}]}, 1),
            changed({"resourceType": "Patient", "id": self.b, "name": [{"family": "Baker"}]}, 1),
            changed(result(self.b, 11), 1),
            changed(result(self.a, 11), 2),
            changed({**both, "id": self.audit_both}, 1),
            changed({**only_a, "id": self.audit_a}, 1),
        ]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Data, Path]:
    path = tmp_path_factory.mktemp("read-access") / "store.sqlite"
    d = Data()
    write_store(path, d.events())
    return d, path


@pytest.fixture(scope="module")
def api(data: tuple[Data, Path], make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(store={"path": data[1]})


@pytest.fixture(scope="module")
def d(data: tuple[Data, Path]) -> Data:
    return data[0]


def hdr(scopes: str, patient: str | None = None) -> dict[str, str]:
    token = mint_token(SECRET, scopes, "reader-app", patient=patient)
    return {"Authorization": f"Bearer {token}", "X-Request-ID": f"t-{uid()}"}


def keys(bundle: dict[str, Any], mode: str | None = None) -> list[str]:
    return [
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if "resource" in e and (mode is None or e["search"]["mode"] == mode)
    ]


def forbidden(response: Any) -> bool:
    issues: list[dict[str, Any]] = response.json()["issue"]
    return bool(response.status_code == 403 and issues[0]["code"] == "forbidden")


def test_a_moved_result_shows_each_patient_only_the_versions_in_its_compartment(
    api: TestClient, d: Data
) -> None:
    a, b = hdr("patient/*.read", patient=d.a), hdr("patient/*.read", patient=d.b)
    url = f"/fhir/Observation/{d.moved}"
    assert api.get(url, headers=a).status_code == 200
    assert api.get(f"{url}/_history/2", headers=a).status_code == 200
    hidden = api.get(f"{url}/_history/1", headers=a)  # B's version: not revealed to A
    assert hidden.status_code == 404 and hidden.json()["issue"][0]["code"] == "not-found"
    history = api.get(f"{url}/_history", headers=a).json()
    assert history["total"] == 1
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["2"]
    assert history["entry"][0]["resource"]["subject"] == {"reference": f"Patient/{d.a}"}
    # B sees nothing of it: the resource is A's now (a misfiled result was never B's)
    assert api.get(url, headers=b).status_code == 404
    assert api.get(f"{url}/_history/1", headers=b).status_code == 404
    assert api.get(f"{url}/_history", headers=b).status_code == 404
    # a user/ token without a patient context still sees every version
    full = api.get(f"{url}/_history", headers=hdr("user/*.read")).json()
    assert full["total"] == 2 and len(full["entry"]) == 2
    assert api.get(f"{url}/_history/1", headers=hdr("user/*.read")).status_code == 200


def test_a_patient_token_gets_no_audit_events_by_any_route(api: TestClient, d: Data) -> None:
    a = hdr("patient/*.read", patient=d.a)
    event = f"/fhir/AuditEvent/{d.audit_both}"
    for url in (event, f"{event}/_history/1", f"{event}/_history", "/fhir/AuditEvent",
                f"/fhir/AuditEvent?patient=Patient/{d.a}", "/fhir/AuditEvent/_history",
                f"/fhir/Patient/{d.a}/$everything?_type=AuditEvent"):  # fmt: skip
        assert forbidden(api.get(url, headers=a)), url
    posted = api.post("/fhir/AuditEvent/_search", content=b"", headers={
        **a, "content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert forbidden(posted)
    # a patient/AuditEvent scope does not open them either
    assert forbidden(api.get(event, headers=hdr("patient/AuditEvent.read", patient=d.a)))
    everything = api.get(f"/fhir/Patient/{d.a}/$everything", headers=a)
    assert everything.status_code == 200
    assert sorted(keys(everything.json())) == sorted([f"Patient/{d.a}", f"Observation/{d.moved}"])
    for spec in ("AuditEvent:patient", "AuditEvent:entity", "AuditEvent:agent"):
        found = api.get(f"/fhir/Patient?_revinclude={spec}", headers=a)
        assert found.status_code == 200, spec
        assert keys(found.json()) == [f"Patient/{d.a}"], spec


def test_audit_events_stay_readable_with_an_audit_read_scope(api: TestClient, d: Data) -> None:
    user = hdr("user/*.read")
    assert api.get(f"/fhir/AuditEvent/{d.audit_both}", headers=user).status_code == 200
    found = api.get(f"/fhir/AuditEvent?patient=Patient/{d.a}", headers=user).json()
    assert sorted(keys(found)) == sorted([f"AuditEvent/{d.audit_both}", f"AuditEvent/{d.audit_a}"])
    everything = api.get(f"/fhir/Patient/{d.a}/$everything", headers=user).json()
    assert f"AuditEvent/{d.audit_both}" in keys(everything)
    revincluded = api.get(f"/fhir/Patient?_id={d.a}&_revinclude=AuditEvent:patient",
                          headers=user).json()  # fmt: skip
    assert sorted(keys(revincluded, "include")) == sorted(
        [f"AuditEvent/{d.audit_both}", f"AuditEvent/{d.audit_a}"]
    )


def test_included_resources_need_the_tokens_read_scope(api: TestClient, d: Data) -> None:
    patients_only = hdr("user/Patient.rs")
    found = api.get(f"/fhir/Patient?_id={d.a}&_revinclude=AuditEvent:patient"
                    "&_revinclude=Observation:subject", headers=patients_only)  # fmt: skip
    assert found.status_code == 200 and keys(found.json()) == [f"Patient/{d.a}"]
    results_only = hdr("user/Observation.rs")
    found = api.get(f"/fhir/Observation?_id={d.moved}&_include=Observation:subject",
                    headers=results_only)  # fmt: skip
    assert found.status_code == 200 and keys(found.json()) == [f"Observation/{d.moved}"]
    both = hdr("user/Observation.rs user/Patient.r")
    found = api.get(f"/fhir/Observation?_id={d.moved}&_include=Observation:subject",
                    headers=both)  # fmt: skip
    assert keys(found.json(), "include") == [f"Patient/{d.a}"]
