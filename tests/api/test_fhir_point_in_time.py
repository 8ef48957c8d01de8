"""`_at` (point in time) on read, history and search, against a real store and gateway app:
a Patient with three versions and a delete, one created later, an Observation that moved
from one patient's compartment to another's."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from api.security.dev_token import mint_token
from tests.api.conftest import SECRET
from tests.projections.fhir_store_support import changed, uid, write_store

pytestmark = pytest.mark.kafka
DAY1 = datetime(2026, 11, 1, 10, tzinfo=UTC)  # versions 1..4 of the patient, a day apart


def at(day: int, hours: float = 0) -> datetime:
    return DAY1 + timedelta(days=day - 1, hours=hours)


def z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Data:
    def __init__(self) -> None:
        self.pt, self.late, self.other, self.obs = (f"{p}{uid()}" for p in "plqo")

    def events(self) -> list[Any]:
        def patient(family: str) -> dict[str, Any]:
            return {"resourceType": "Patient", "id": self.pt, "name": [{"family": family}]}

        def obs(subject: str) -> dict[str, Any]:
            return {"resourceType": "Observation", "id": self.obs, "status": "final",
                    "code": {"text": "x"}, "subject": {"reference": f"Patient/{subject}"}}  # fmt: skip

        return [
            changed(patient("One"), 1, at=at(1)),
            changed(patient("Two"), 2, at=at(2)),
            changed(patient("Three"), 3, at=at(3)),
            changed(patient("Three"), 4, delete=True, at=at(4)),
            changed({"resourceType": "Patient", "id": self.late}, 1, at=at(3)),
            changed({"resourceType": "Patient", "id": self.other}, 1, at=at(1)),
            changed(obs(self.other), 1, at=at(1)),
            changed(obs(self.late), 2, at=at(3)),  # moved to the other patient's compartment
        ]


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, make_client: Callable[..., TestClient]
) -> tuple[Data, TestClient]:
    path = tmp_path_factory.mktemp("point-in-time") / "store.sqlite"
    d = Data()
    write_store(path, d.events())
    return d, make_client(store={"path": path})


def get(api: TestClient, url: str, patient: str | None = None) -> Any:
    token = mint_token(SECRET, "user/*.read patient/*.read", "reader", patient=patient)
    return api.get(url, headers={"Authorization": f"Bearer {token}"})


def family(response: Any) -> str:
    assert response.status_code == 200, response.text
    return str(response.json()["name"][0]["family"])


def test_read_at_answers_the_version_current_then(setup: tuple[Data, TestClient]) -> None:
    d, api = setup
    url = f"/fhir/Patient/{d.pt}"
    assert get(api, f"{url}?_at={z(at(1, -1))}").status_code == 404  # not yet created
    assert family(get(api, f"{url}?_at={z(at(1, 1))}")) == "One"
    assert family(get(api, f"{url}?_at={z(at(2))}")) == "Two"  # updated at that very second
    assert family(get(api, f"{url}?_at=2026-11-03")) == "Three"  # a day: its end
    reply = get(api, f"{url}?_at={z(at(3, 1))}")
    assert family(reply) == "Three" and reply.headers["etag"] == 'W/"3"'
    assert get(api, f"{url}?_at={z(at(4, 1))}").status_code == 410  # deleted then
    assert get(api, url).status_code == 410
    assert get(api, f"{url}/_history/1?_at={z(at(2))}").status_code == 400  # not ignored
    assert get(api, f"/fhir/Patient/{d.other}/$everything?_at=2026-11-02").status_code == 400
    for bad in ("_at=yesterday", f"_at={z(at(1))}&_at={z(at(2))}", "_at=gt2026-11-01"):
        reply = get(api, f"{url}?{bad}")
        assert reply.status_code == 400 and reply.json()["resourceType"] == "OperationOutcome"


def test_read_at_keeps_a_patient_token_to_what_was_in_its_compartment(
    setup: tuple[Data, TestClient],
) -> None:
    d, api = setup
    url = f"/fhir/Observation/{d.obs}"
    assert get(api, f"{url}?_at={z(at(3, 1))}", patient=d.late).status_code == 200
    # Then it was in the other patient's compartment: not shown to this one.
    assert get(api, f"{url}?_at={z(at(2))}", patient=d.late).status_code == 404
    assert get(api, f"{url}?_at={z(at(2))}", patient=d.other).status_code == 404  # not now
    assert get(api, f"{url}?_at={z(at(2))}").status_code == 200


def versions(response: Any) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.text
    body = response.json()
    return [(e["fullUrl"].rsplit("/", 1)[1], e["response"]["etag"][3:-1])
            for e in body.get("entry", [])]  # fmt: skip


def test_history_at_keeps_the_versions_current_during_the_period(
    setup: tuple[Data, TestClient],
) -> None:
    d, api = setup
    url = f"/fhir/Patient/{d.pt}/_history"
    assert versions(get(api, f"{url}?_at=2026-11-02")) == [(d.pt, "2"), (d.pt, "1")]
    assert versions(get(api, f"{url}?_at=2026-11")) == [(d.pt, str(v)) for v in (4, 3, 2, 1)]
    assert versions(get(api, f"{url}?_at=2026-11-05")) == [(d.pt, "4")]  # the deletion
    empty = get(api, f"{url}?_at=2026-10-01")
    assert empty.status_code == 200 and empty.json()["total"] == 0
    typed = get(api, f"/fhir/Patient/_history?_at={z(at(3))}")
    assert sorted(versions(typed)) == sorted([(d.pt, "3"), (d.late, "1"), (d.other, "1")])
    assert get(api, f"{url}?_at=soon").status_code == 400


def test_search_at_on_the_version_history(setup: tuple[Data, TestClient]) -> None:
    d, api = setup

    def found(query: str) -> list[str]:
        reply = get(api, f"/fhir/Patient?{query}")
        assert reply.status_code == 200, reply.text
        return sorted(e["resource"]["id"] for e in reply.json().get("entry", []))

    assert found(f"_at={z(at(2, 2))}") == sorted([d.pt, d.other])
    assert found(f"_at={z(at(4, 2))}") == sorted([d.late, d.other])  # pt deleted by then
    assert found(f"_at={z(at(2, 2))}&_id={d.pt},{d.late}") == [d.pt]
    page = get(api, f"/fhir/Patient?_at={z(at(3, 2))}&_count=1").json()
    assert page["total"] == 3 and len(page["entry"]) == 1
    assert any(link["relation"] == "next" for link in page["link"])
    assert page["entry"][0]["resource"]["meta"]["versionId"] in ("1", "3")
    refused = get(api, f"/fhir/Patient?_at={z(at(2))}&name=One")
    assert refused.status_code == 400 and "name" in refused.text
    assert get(api, f"/fhir/Observation?_at={z(at(2))}", patient=d.other).status_code == 403


def test_capability_statement_says_what_at_does(setup: tuple[Data, TestClient]) -> None:
    _, api = setup
    statement = api.get("/fhir/metadata").json()
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    documented = {p["name"]: p.get("documentation", "") for p in patient["searchParam"]}
    assert "_id" in documented["_at"] and "400" in documented["_at"]
    operations = {o["name"] for o in statement["rest"][0]["operation"]}
    assert {"export"} <= operations
