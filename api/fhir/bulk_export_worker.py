"""The process one bulk export runs in: `python -m api.fhir.bulk_export_worker JOB_DIR STORE`.

Started by api/fhir/bulk_jobs.py. It reads the request from the job's status file, writes the
NDJSON files next to it (projections/fhir_store/bulk_export.py) and records the outcome:
done with the files and the snapshot's log position, or the error. It refreshes the
heartbeat about once a second and stops when the job's directory is gone (deleted).
"""

from __future__ import annotations

import contextlib
import sys
import time
import traceback
from pathlib import Path

import orjson

from api.fhir.bulk_jobs import STATUS, write_status
from projections.fhir_store.bulk_export import ExportCancelled, ExportRequest, export
from projections.fhir_store.errors import StoreError

_HEARTBEAT_SECONDS = 1.0


def run(directory: Path, store_path: Path) -> None:
    status = orjson.loads((directory / STATUS).read_bytes())
    asked = status["request_args"]
    request = ExportRequest(
        level=asked["level"],
        types=tuple(asked["types"]),
        since_us=asked.get("since_us"),
        group=asked.get("group"),
        max_per_file=asked["max_per_file"],
    )
    last = 0.0

    def progress(written: int) -> bool:
        nonlocal last
        now = time.time()
        if now - last >= _HEARTBEAT_SECONDS:
            if not directory.exists():
                return False
            last = now
            try:
                write_status(directory, {**status, "heartbeat": now, "exported": written})
            except FileNotFoundError:  # deleted meanwhile
                return False
        return True

    try:
        result = export(store_path, request, directory, progress)
    except ExportCancelled:
        return
    except StoreError as exc:
        _finish(directory, {**status, "state": "error", "error": [str(exc)]})
        return
    except Exception as exc:  # reported to the client rather than left running forever
        traceback.print_exc()
        _finish(directory, {**status, "state": "error", "error": [f"the export failed: {exc}"]})
        return
    _finish(directory, {
        **status, "state": "done", "exported": sum(f.count for f in result.files),
        "output": [{"type": f.resource_type, "file": f.name, "count": f.count}
                   for f in result.files],
        "position": result.position, "transactionTime": result.transaction_time,
    })  # fmt: skip


def _finish(directory: Path, status: dict[str, object]) -> None:
    now = time.time()
    with contextlib.suppress(FileNotFoundError):  # the job was deleted meanwhile
        write_status(directory, {**status, "heartbeat": now, "finished": now})


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
