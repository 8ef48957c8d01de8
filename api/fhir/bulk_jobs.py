"""Bulk export jobs on disk: one directory per job, shared by every gateway process.

`<bulk_export_dir>/<job id>/status.json` holds the request, who asked, the state
(running, done, error) and, once done, the files and the snapshot's log position. The
export runs in its own process (api/fhir/bulk_export_worker.py), so an export of millions of
resources takes no time from the API; any gateway process can answer a poll, a download
or a delete from these files. The worker refreshes `heartbeat` while it runs: a job whose
heartbeat is older than STALE_SECONDS lost its process (a restart) and is reported failed.
Deleting a job renames its directory away first (polls see it gone at once), then removes
it; a worker still writing notices the directory is gone and stops.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

STATUS = "status.json"
STALE_SECONDS = 60.0
_JOB_ID_CHARS = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    directory: Path
    status: dict[str, Any]

    @property
    def state(self) -> str:
        if (
            self.status["state"] == "running"
            and time.time() - self.status["heartbeat"] > STALE_SECONDS
        ):
            return "lost"
        return str(self.status["state"])


class JobDirectory:
    def __init__(self, root: Path, expire_seconds: float) -> None:
        self.root = root
        self.expire_seconds = expire_seconds

    def create(self, status: dict[str, Any]) -> Job:
        job_id = secrets.token_hex(16)
        directory = self.root / job_id
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.mkdir(mode=0o700)  # the files hold patient data: the service's user only
        now = time.time()
        status = {**status, "id": job_id, "state": "running", "created": now, "heartbeat": now}
        write_status(directory, status)
        return Job(job_id, directory, status)

    def get(self, job_id: str) -> Job | None:
        if len(job_id) != 32 or not set(job_id) <= _JOB_ID_CHARS:
            return None  # never a path outside the root
        directory = self.root / job_id
        try:
            status = orjson.loads((directory / STATUS).read_bytes())
        except (FileNotFoundError, NotADirectoryError, orjson.JSONDecodeError):
            return None  # gone, or deleted while read
        return Job(job_id, directory, status)

    def delete(self, job: Job) -> None:
        doomed = self.root / f".deleted-{job.id}-{secrets.token_hex(4)}"
        try:
            job.directory.rename(doomed)
        except FileNotFoundError:
            return  # another process deleted it first
        shutil.rmtree(doomed, ignore_errors=True)

    def expire(self) -> None:
        """Delete the jobs finished (or lost) more than expire_seconds ago."""
        if not self.root.exists():
            return
        cutoff = time.time() - self.expire_seconds
        for entry in self.root.iterdir():
            if entry.name.startswith(".deleted-"):
                shutil.rmtree(entry, ignore_errors=True)  # a delete that was interrupted
                continue
            job = self.get(entry.name)
            if job is None or job.state == "running":
                continue
            if job.status.get("finished", job.status["heartbeat"]) < cutoff:
                self.delete(job)

    def erase(self, resources: set[tuple[str, str]], before: float) -> dict[str, int]:
        """Take erased resources out of every export still served (`carelog erase`, after it
        purged the store at `before`, a time.time()): their lines leave the finished jobs'
        files (each rewritten whole, then swapped in; the counts follow), and a job still
        running that began before then is deleted, as its snapshot may hold them (its client
        sees the job gone and asks again). Files already downloaded are the client's."""
        if not self.root.exists():
            return {}
        ids_of: dict[str, set[str]] = {}
        for resource_type, resource_id in resources:
            ids_of.setdefault(resource_type, set()).add(resource_id)
        lines = cancelled = 0
        for entry in sorted(self.root.iterdir()):
            job = self.get(entry.name)
            if job is None:
                continue
            if job.status["state"] == "running":
                if job.status["created"] < before:
                    self.delete(job)
                    cancelled += 1
                continue
            outputs, dropped = [], 0
            for output in job.status.get("output", []):
                ids = ids_of.get(output["type"])
                gone = _drop_lines(job.directory / output["file"], ids) if ids else 0
                outputs.append({**output, "count": output["count"] - gone})
                dropped += gone
            if dropped:
                exported = job.status.get("exported", 0) - dropped
                write_status(job.directory, {**job.status, "output": outputs, "exported": exported})
                lines += dropped
        return {"export_lines_removed": lines, "export_jobs_cancelled": cancelled}

    def start(self, job: Job, store_path: Path) -> None:
        """Run the export in a process of its own, reaped by a thread of this one."""
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.fhir.bulk_export_worker",
                str(job.directory),
                str(store_path),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the gateway does not kill it half-way
        )
        threading.Thread(target=process.wait, name=f"bulk-export-{job.id}", daemon=True).start()


def _drop_lines(path: Path, ids: set[str]) -> int:
    """Rewrite an NDJSON file without the resources whose id is in `ids`; how many went."""
    needles = [f'"id":"{i}"'.encode() for i in ids]  # the store's JSON has no spaces
    kept: list[bytes] = []
    dropped = 0
    with open(path, "rb") as lines:
        for line in lines:
            if any(n in line for n in needles) and orjson.loads(line).get("id") in ids:
                dropped += 1
            else:
                kept.append(line)
    if dropped:
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_bytes(b"".join(kept))
        os.replace(temporary, path)
    return dropped


def write_status(directory: Path, status: dict[str, Any]) -> None:
    """Replace the status atomically (readers in other processes never see half of it)."""
    temporary = directory / f".{STATUS}.{os.getpid()}"
    temporary.write_bytes(orjson.dumps(status))
    os.replace(temporary, directory / STATUS)
