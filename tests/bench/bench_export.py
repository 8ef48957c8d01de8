"""FHIR Bulk Data $export benchmark: a system-level export of 1,000,000 resources.

The store is built with the FHIR store benchmark's generator (20% Patient, 70%
Observation, 10% Encounter) as `carelog projection rebuild` builds it (--bulk there).
Each run is what a kick-off starts: a job directory with its status file, then the export
process (`python -m api.fhir.bulk_export_worker`), timed from its start to its exit, with its
peak anonymous memory (sampled every 50 ms) (the files are streamed from a cursor: memory stays flat whatever the size).
The manifest's counts are checked to add up to every resource. Median of 3 runs.

    .venv/bin/python -m tests.bench.bench_export [--changes 1000000] [--store PATH]
        [--level system|patient]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from api.fhir.bulk_jobs import STATUS, JobDirectory
from tests.bench.bench_fhir_rest import build_store
from tests.bench.common import RUNS


def export_once(store: Path, jobs: JobDirectory, level: str) -> tuple[float, float, int, int]:
    """(seconds, peak anonymous MiB of the export process, resources exported, files)."""
    job = jobs.create({
        "owner": "bench", "request": "bench", "requires_token": True, "exported": 0,
        "request_args": {"level": level, "types": [], "since_us": None, "group": None,
                         "max_per_file": 100_000},
    })  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "api.fhir.bulk_export_worker",
                                str(job.directory), str(store)])  # fmt: skip
    peak = 0
    while process.poll() is None:
        peak = max(peak, _anonymous_kib(process.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    status = orjson.loads((job.directory / STATUS).read_bytes())
    if process.returncode != 0 or status["state"] != "done":
        raise RuntimeError(f"the export failed: {status.get('error')}")
    count = sum(f["count"] for f in status["output"])
    files = len(status["output"])
    jobs.delete(job)
    return seconds, peak / 1024, count, files


def _anonymous_kib(pid: int) -> int:
    """The process's anonymous (heap) memory: the store file it maps is not counted, the
    kernel shares and drops those pages."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--store", type=Path, help="keep (and reuse) the store at this path")
    parser.add_argument("--level", choices=("system", "patient"), default="system",
                        help="patient: every patient's compartment (the same resources, each "
                        "checked against the compartment's reference index)")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        store = build_store(args.store, work, args.changes, bulk=True)
        jobs = JobDirectory(Path(work) / "jobs", 3600)
        runs = [export_once(store, jobs, args.level) for _ in range(RUNS)]
        for seconds, peak, count, files in runs:
            if count != args.changes:
                raise RuntimeError(
                    f"exported {count:,} resources, the store holds {args.changes:,}"
                )
            print(f"  run: {seconds:.1f}s, {count / seconds:,.0f} resources/s, {files} files, "
                  f"peak heap {peak:.0f} MiB", flush=True)  # fmt: skip
        seconds = statistics.median(r[0] for r in runs)
        peak = statistics.median(r[1] for r in runs)
        print(f"{'$export ' + format(args.changes, ',') + f' resources ({args.level} level)':<52} "
              f"{args.changes / seconds:>10,.0f} resources/s  {seconds:6.1f} s  "
              f"peak heap {peak:.0f} MiB  (median of {RUNS})", flush=True)  # fmt: skip
        shutil.rmtree(Path(work) / "jobs", ignore_errors=True)


if __name__ == "__main__":
    main()
