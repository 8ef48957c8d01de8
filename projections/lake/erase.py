"""Removing resources' rows from every Delta table for good: a delete, then a vacuum.

Used by `carelog erase` (api/erasure/erase.py) once the data keys are shredded, so the sink
that folds the log can no longer bring them back (it skips erased events).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from projections.lake.sink import COMMIT_RETRIES, LakeSink
from streams.settings import Settings


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def _delete(table: DeltaTable, predicate: str) -> int:
    """Rows deleted; retried when the running sink committed first (it appends meanwhile)."""
    for attempt in range(COMMIT_RETRIES):
        try:
            table.update_incremental()
            metrics = table.delete(predicate)
            return int(metrics.get("num_deleted_rows", 0) or 0)
        except CommitFailedError:
            time.sleep(0.1 * (attempt + 1))
    raise CommitFailedError(f"{table.table_uri}: {COMMIT_RETRIES} commit conflicts in a row")


def erase_from_lake(
    settings: Settings, resources: set[tuple[str, str]], vacuum_hours: int
) -> tuple[dict[str, int], int]:
    """Delete the resources' rows from bronze and every silver table (plain and
    de-identified), then vacuum each table changed so the files that held them are gone."""
    if not (settings.var_dir / "lake").exists() and settings.lake_uri is None:
        return {}, 0
    sink = LakeSink(settings)
    by_type: dict[str, set[str]] = {}
    for resource_type, resource_id in resources:
        by_type.setdefault(resource_type, set()).add(resource_id)
    deleted: dict[str, int] = {}
    vacuumed = 0
    for target in sink.targets:
        table = target.table
        if target.resource is None:  # bronze: every type
            clauses = [
                f"(resource_type = '{t}' AND resource_id IN ({_quoted(ids)}))"
                for t, ids in by_type.items()
            ]
            predicate = " OR ".join(clauses)
        else:
            ids = by_type.get(target.resource)
            if not ids:
                continue
            if target.name.startswith("deidentified/") and sink.deidentifier is not None:
                key = sink.deidentifier.key(target.resource)
                ids = {key(i) for i in ids}
            predicate = f"_resource_id IN ({_quoted(ids)})"
        if not predicate:
            continue
        rows = _delete(table, predicate)
        if rows:
            deleted[target.name] = rows
            files = table.vacuum(
                retention_hours=vacuum_hours, dry_run=False, enforce_retention_duration=False
            )
            vacuumed += len(files)
    return deleted, vacuumed
