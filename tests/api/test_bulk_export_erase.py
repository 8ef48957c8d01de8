"""An erasure reaches the $export files still served: the erased resources' lines leave the
finished jobs' files (counts follow), and a job still running from before the store was
purged is deleted (api/fhir/bulk_jobs.py `JobDirectory.erase`)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from api.fhir.bulk_jobs import JobDirectory, write_status


def _line(resource: dict[str, object]) -> bytes:
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS) + b"\n"


def _done_job(jobs: JobDirectory, files: dict[str, list[dict[str, object]]]) -> Path:
    job = jobs.create({"request_args": {}})
    for name, resources in files.items():
        (job.directory / name).write_bytes(b"".join(_line(r) for r in resources))
    outputs = [{"type": name.split("-")[0], "file": name, "count": len(rs)}
               for name, rs in files.items()]  # fmt: skip
    write_status(job.directory, {**job.status, "state": "done", "finished": time.time(),
                                 "exported": sum(len(rs) for rs in files.values()),
                                 "output": outputs})  # fmt: skip
    return job.directory


def test_erased_resources_leave_the_export_files_and_running_exports_stop(
    tmp_path: Path,
) -> None:
    jobs = JobDirectory(tmp_path / "bulk-export", expire_seconds=3600)
    gone = {"resourceType": "Patient", "id": "gone", "name": [{"family": "Forgetme"}]}
    kept = {"resourceType": "Patient", "id": "kept", "name": [{"family": "Keepme"}]}
    obs = {
        "resourceType": "Observation",
        "id": "gone-obs",
        "subject": {"reference": "Patient/gone"},
    }
    # a kept resource with "id":"gone" inside it (a contained resource) is not the erased one
    other = {"resourceType": "Observation", "id": "other", "contained": [{"id": "gone"}]}
    done = _done_job(jobs, {
        "Patient-1.ndjson": [kept, gone], "Observation-1.ndjson": [obs, other],
    })  # fmt: skip
    untouched = _done_job(jobs, {"Patient-1.ndjson": [kept]})
    running_before = jobs.create({"request_args": {}}).directory
    purged = time.time()
    time.sleep(0.01)
    running_after = jobs.create({"request_args": {}}).directory

    erased = jobs.erase({("Patient", "gone"), ("Observation", "gone-obs")}, before=purged)

    assert erased == {"export_lines_removed": 2, "export_jobs_cancelled": 1}
    assert (done / "Patient-1.ndjson").read_bytes() == _line(kept)
    assert (done / "Observation-1.ndjson").read_bytes() == _line(other)
    status = orjson.loads((done / "status.json").read_bytes())
    assert status["exported"] == 2
    assert {o["file"]: o["count"] for o in status["output"]} == {
        "Patient-1.ndjson": 1,
        "Observation-1.ndjson": 1,
    }
    assert (untouched / "Patient-1.ndjson").read_bytes() == _line(kept)
    assert not running_before.exists() and running_after.exists()
    assert not [p for p in (tmp_path / "bulk-export").rglob("*") if p.is_file()
                and b"Forgetme" in p.read_bytes()]  # fmt: skip
    assert jobs.erase({("Patient", "gone")}, before=purged) == {
        "export_lines_removed": 0,
        "export_jobs_cancelled": 0,
    }  # run again: nothing left
