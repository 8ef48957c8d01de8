"""Removing resources' rows from every Delta table for good: a delete, then the files it
dropped are removed from storage.

Used by `carelog erase` (api/erasure/erase.py) once the data keys are shredded, so the sink
that folds the log can no longer bring them back (it skips erased events).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from projections.lake.sink import COMMIT_RETRIES, LakeSink
from streams.settings import Settings


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def _delete(table: DeltaTable, predicate: str) -> tuple[int, set[str]]:
    """Rows deleted and the files the delete dropped from the table (rewritten without
    those rows); retried when the running sink committed first (it appends meanwhile)."""
    for attempt in range(COMMIT_RETRIES):
        try:
            table.update_incremental()
            before = set(table.file_uris())
            metrics = table.delete(predicate)
            table.update_incremental()
            return int(metrics.get("num_deleted_rows", 0) or 0), before - set(table.file_uris())
        except CommitFailedError:
            time.sleep(0.1 * (attempt + 1))
    raise CommitFailedError(f"{table.table_uri}: {COMMIT_RETRIES} commit conflicts in a row")


def _remove_files(files: set[str]) -> int:
    """Remove these files (no longer in the table's current version) from storage. Not a
    vacuum: that would also take files a running sink wrote and has not committed yet."""
    removed = 0
    for uri in sorted(files):
        fs, path = pafs.FileSystem.from_uri(uri)
        try:
            fs.delete_file(path)
            removed += 1
        except FileNotFoundError:
            continue  # removed by an earlier run of the same erasure
    return removed


def erase_from_lake(
    settings: Settings, resources: set[tuple[str, str]]
) -> tuple[dict[str, int], int]:
    """Delete the resources' rows from bronze and every silver table (plain and
    de-identified), then remove the files that held them: (rows per table, files removed).
    The tables' versions before the delete can no longer be read (time travel to them)."""
    if not (settings.var_dir / "lake").exists() and settings.lake.uri is None:
        return {}, 0
    sink = LakeSink(settings)
    by_type: dict[str, set[str]] = {}
    for resource_type, resource_id in resources:
        by_type.setdefault(resource_type, set()).add(resource_id)
    deleted: dict[str, int] = {}
    files_removed = 0
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
        rows, dropped = _delete(table, predicate)
        if rows:
            deleted[target.name] = rows
        files_removed += _remove_files(dropped)
    return deleted, files_removed
