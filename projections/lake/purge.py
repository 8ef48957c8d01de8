"""Removing resources' rows from the lake's tables for good: a Delta delete, then the files it
dropped are removed from storage, so the rows cannot come back by time travel either.

Used by `carelog erase` (projections/lake/erase.py: every table) and by the sink when a
Consent starts to deny the lake (projections/lake/consent.py: the de-identified tables).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow.fs as pafs
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from projections.lake.deidentify import Deidentifier

if TYPE_CHECKING:
    from projections.lake.sink import Target

COMMIT_RETRIES = 5  # commits lost to another writer in a row before giving up


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
            continue  # removed by an earlier run of the same purge
    return removed


def purge_resources(
    targets: Iterable[Target],
    resources: set[tuple[str, str]],
    deidentifier: Deidentifier | None,
) -> tuple[dict[str, int], int]:
    """Delete the resources' rows from `targets` (bronze by type and id, a silver table by
    `_resource_id`, hashed in the de-identified ones), then remove the files that held them:
    (rows per table, files removed)."""
    by_type: dict[str, set[str]] = {}
    for resource_type, resource_id in resources:
        by_type.setdefault(resource_type, set()).add(resource_id)
    deleted: dict[str, int] = {}
    files_removed = 0
    for target in targets:
        if target.resource is None:  # bronze: every type
            predicate = " OR ".join(
                f"(resource_type = '{t}' AND resource_id IN ({_quoted(ids)}))"
                for t, ids in by_type.items()
            )
        else:
            ids = by_type.get(target.resource, set())
            if ids and target.name.startswith("deidentified/") and deidentifier is not None:
                key = deidentifier.key(target.resource)
                ids = {key(i) for i in ids}
            predicate = f"_resource_id IN ({_quoted(ids)})" if ids else ""
        if not predicate:
            continue
        rows, dropped = _delete(target.table, predicate)
        if rows:
            deleted[target.name] = rows
        files_removed += _remove_files(dropped)
    return deleted, files_removed
