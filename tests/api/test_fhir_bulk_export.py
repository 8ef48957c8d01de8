"""FHIR Bulk Data $export against a real store and gateway app (the export runs in its own
process): kick-off, polling, manifest, NDJSON equal to the store's JSON, split files,
_type/_since, system/patient/group levels, scopes, tokens, delete."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from api.fhir.bulk_jobs import JobDirectory, write_status
from api.security.dev_token import mint_token
from projections.fhir_store import FhirStore
from tests.api.conftest import SECRET
from tests.projections.fhir_store_support import T0, changed, uid, write_store

pytestmark = pytest.mark.kafka
EXPORT = "system/*.read"
LATER = T0 + timedelta(days=30)


class Data:
    def __init__(self) -> None:
        self.p1, self.p2, self.gone, self.doc = f"a{uid()}", f"b{uid()}", f"g{uid()}", f"d{uid()}"
        self.obs1 = [f"o1{i}{uid()}" for i in range(3)]
        self.obs2 = f"o2{uid()}"
        self.late = f"late{uid()}"
        self.group = f"grp{uid()}"

    def events(self) -> list[Any]:
        def obs(oid: str, pid: str) -> dict[str, Any]:
            return {"resourceType": "Observation", "id": oid, "status": "final",
                    "code": {"text": "hb"}, "subject": {"reference": f"Patient/{pid}"},
                    "performer": [{"reference": f"Practitioner/{self.doc}"}]}  # fmt: skip

        return [
            changed({"resourceType": "Patient", "id": self.p1, "name": [{"family": "One"}]}, 1),
            changed({"resourceType": "Patient", "id": self.p1, "name": [{"family": "Uno"}]}, 2),
            changed({"resourceType": "Patient", "id": self.p2}, 1),
            changed({"resourceType": "Practitioner", "id": self.doc}, 1),
            *(changed(obs(o, self.p1), 1) for o in self.obs1),
            changed(obs(self.obs2, self.p2), 1),
            changed({"resourceType": "Patient", "id": self.gone}, 1),
            changed({"resourceType": "Patient", "id": self.gone}, 2, delete=True),
            changed(obs(self.late, self.p2), 1, at=LATER),
            changed(
                {
                    "resourceType": "Group",
                    "id": self.group,
                    "type": "person",
                    "actual": True,
                    "member": [{"entity": {"reference": f"Patient/{self.p1}"}}],
                },
                1,
            ),
        ]


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, make_client: Callable[..., TestClient]
) -> tuple[Data, Path, Path, TestClient]:
    work = tmp_path_factory.mktemp("bulk-export")
    d = Data()
    write_store(work / "store.sqlite", d.events())
    api = make_client(
        store={"path": work / "store.sqlite"},
        bulk_export={"dir": work / "jobs", "file_max_resources": 2},
    )
    return d, work / "store.sqlite", work / "jobs", api


def hdr(scopes: str = EXPORT, subject: str = "bulk-client", **extra: str) -> dict[str, str]:
    token = mint_token(SECRET, scopes, subject, patient=extra.pop("patient", None))
    return {"Authorization": f"Bearer {token}", "Prefer": "respond-async", **extra}


def kick_off(api: TestClient, url: str, **kw: Any) -> str:
    response = api.get(url, headers=hdr(**kw))
    assert response.status_code == 202, response.text
    return str(response.headers["content-location"])


def wait(api: TestClient, location: str, **kw: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        response = api.get(location, headers=hdr(**kw))
        if response.status_code == 200:
            assert response.headers["expires"].endswith("GMT")
            manifest: dict[str, Any] = response.json()
            return manifest
        assert response.status_code == 202, response.text
        assert response.headers["x-progress"] and response.headers["retry-after"]
        time.sleep(0.1)
    raise AssertionError(f"{location} did not finish")


def lines(api: TestClient, manifest: dict[str, Any], **kw: Any) -> dict[str, list[str]]:
    """{type: the NDJSON lines of its files, in manifest order}."""
    out: dict[str, list[str]] = {}
    for entry in manifest["output"]:
        response = api.get(entry["url"], headers=hdr(**kw))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+ndjson")
        got = response.text.splitlines()
        assert len(got) == entry["count"] and response.text.endswith("\n")
        out.setdefault(entry["type"], []).extend(got)
    return out


def export(api: TestClient, url: str, **kw: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    manifest = wait(api, kick_off(api, url, **kw), **kw)
    return manifest, lines(api, manifest, **kw)


def ids(got: dict[str, list[str]]) -> set[str]:
    return {f"{t}/{orjson.loads(line)['id']}" for t, found in got.items() for line in found}


def test_system_export_equals_the_store(setup: tuple[Data, Path, Path, TestClient]) -> None:
    d, path, _, api = setup
    manifest, got = export(api, "/fhir/$export")
    assert manifest["requiresAccessToken"] is True and manifest["error"] == []
    assert manifest["request"].endswith("/fhir/$export")
    with FhirStore.open(path, readonly=True) as store:
        offsets = {f"{t}:{p}": o for (t, p), o in store.applied_offsets().items()}
        assert manifest["extension"]["carelog:position"] == offsets
        for rtype, found in got.items():
            for line in found:
                stored = store.read(rtype, orjson.loads(line)["id"])
                assert stored is not None and not stored.deleted and line == stored.json
    conn = sqlite3.connect(path)
    live = {f"{t}/{i}" for t, i in conn.execute("SELECT type, id FROM resources WHERE deleted = 0")}
    conn.close()
    assert ids(got) == live and f"Patient/{d.gone}" not in live
    assert manifest["transactionTime"] == LATER.isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    observations = [o for o in manifest["output"] if o["type"] == "Observation"]
    assert [o["count"] for o in observations] == [2, 2, 1]  # split at 2 per file
    assert orjson.loads(
        got["Patient"][[orjson.loads(x)["id"] for x in got["Patient"]].index(d.p1)]
    )["name"] == [{"family": "Uno"}]


def test_type_and_since_filters(setup: tuple[Data, Path, Path, TestClient]) -> None:
    d, _, _, api = setup
    _, got = export(api, "/fhir/$export?_type=Patient,Practitioner")
    assert ids(got) == {f"Patient/{d.p1}", f"Patient/{d.p2}", f"Practitioner/{d.doc}"}
    since = (LATER - timedelta(days=1)).isoformat().replace("+00:00", "Z")
    _, got = export(api, f"/fhir/$export?_since={since}&_outputFormat=application/fhir%2Bndjson")
    assert ids(got) == {f"Observation/{d.late}"}


def test_patient_and_group_levels_keep_to_compartments(
    setup: tuple[Data, Path, Path, TestClient],
) -> None:
    d, _, _, api = setup
    _, got = export(api, "/fhir/Patient/$export")
    expected = {f"Patient/{d.p1}", f"Patient/{d.p2}", f"Observation/{d.obs2}",
                f"Observation/{d.late}", *(f"Observation/{o}" for o in d.obs1)}  # fmt: skip
    assert ids(got) == expected  # no Practitioner, no Group
    _, got = export(api, f"/fhir/Group/{d.group}/$export")
    assert ids(got) == {f"Patient/{d.p1}", *(f"Observation/{o}" for o in d.obs1)}
    assert api.get("/fhir/Group/nope/$export", headers=hdr()).status_code == 404
    refused = api.get("/fhir/Patient/$export?_type=Practitioner", headers=hdr())
    assert refused.status_code == 400


def test_scopes_tokens_and_parameters_are_enforced(
    setup: tuple[Data, Path, Path, TestClient],
) -> None:
    _, _, _, api = setup
    assert api.get("/fhir/$export", headers={"Prefer": "respond-async"}).status_code == 401
    assert api.get("/fhir/$export", headers=hdr("user/*.read")).status_code == 403
    assert api.get("/fhir/$export", headers=hdr(EXPORT, patient="x")).status_code == 403
    narrow = api.get("/fhir/$export?_type=Observation", headers=hdr("system/Patient.read"))
    assert narrow.status_code == 403
    for query in ("_typeFilter=Observation%3Fstatus%3Dfinal", "_outputFormat=text/csv",
                  "_since=2024-01-01", "_since=T", "_since=2024-13-01T00:00:00Z",
                  "_elements=id"):  # fmt: skip
        answer = api.get(f"/fhir/$export?{query}", headers=hdr())
        assert answer.status_code == 400, query
        assert answer.json()["resourceType"] == "OperationOutcome"
    sync = api.get("/fhir/$export", headers={"Authorization": hdr()["Authorization"]})
    assert sync.status_code == 400
    # Without _type, a narrow token exports only what it may read.
    manifest, got = export(api, "/fhir/$export", scopes="system/Patient.read")
    assert set(got) == {"Patient"}
    file_url = manifest["output"][0]["url"]
    assert api.get(file_url).status_code == 401
    assert api.get(file_url, headers=hdr(subject="someone-else")).status_code == 404
    status_url = file_url.replace("$export-file", "$export-status").rsplit("/", 1)[0]
    assert api.get(status_url, headers=hdr(subject="someone-else")).status_code == 404


def test_delete_removes_the_job_and_its_files(setup: tuple[Data, Path, Path, TestClient]) -> None:
    _, _, jobs, api = setup
    location = kick_off(api, "/fhir/$export")
    manifest = wait(api, location)
    job = location.rsplit("/", 1)[1]
    assert (jobs / job).is_dir()
    assert api.delete(location, headers=hdr()).status_code == 202
    assert not (jobs / job).exists()
    assert api.get(location, headers=hdr()).status_code == 404
    assert api.get(manifest["output"][0]["url"], headers=hdr()).status_code == 404
    running = kick_off(api, "/fhir/$export")  # deleted at once, whether it ran or not
    assert api.delete(running, headers=hdr()).status_code == 202
    assert api.get(running, headers=hdr()).status_code == 404


def test_another_gateway_process_serves_the_job_and_finished_jobs_expire(
    setup: tuple[Data, Path, Path, TestClient], make_client: Callable[..., TestClient]
) -> None:
    d, path, jobs, api = setup
    other = make_client(store={"path": path}, bulk_export={"dir": jobs, "expire_seconds": 0})
    location = kick_off(api, "/fhir/$export?_type=Practitioner")
    manifest = wait(other, location)  # kicked off on one app, polled and fetched on another
    assert ids(lines(other, manifest)) == {f"Practitioner/{d.doc}"}
    kick_off(other, "/fhir/$export?_type=Practitioner")  # sweeps what finished 0 s ago
    assert api.get(location, headers=hdr()).status_code == 404
    lost = JobDirectory(jobs, 3600).create({"owner": "bulk-client", "exported": 0})
    write_status(lost.directory, {**lost.status, "heartbeat": time.time() - 3600})
    reply = api.get(f"/fhir/$export-status/{lost.id}", headers=hdr())
    assert reply.status_code == 500 and "process is gone" in reply.text
