"""Removing resources' rows from the lake's tables for good: a Delta delete, then every file an
older version still reads that holds them (the ones the delete dropped, and the ones earlier
updates, deletes and compactions dropped) is removed from storage, so the rows cannot come
back by time travel either. Time travel to a version that read such a file fails from then on.

Used by `carelog erase` (projections/lake/erase.py: every table) and by the sink when a
Consent starts to deny the lake (projections/lake/consent.py: the de-identified tables).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from projections.lake.deidentify import Deidentifier

if TYPE_CHECKING:
    from projections.lake.sink import Target

COMMIT_RETRIES = 5  # commits lost to another writer in a row before giving up


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in sorted(values))


def _delete(table: DeltaTable, predicate: str) -> int:
    """Rows deleted (the files holding them are rewritten without them); retried when the
    running sink committed first (it appends meanwhile)."""
    for attempt in range(COMMIT_RETRIES):
        try:
            table.update_incremental()
            metrics = table.delete(predicate)
            table.update_incremental()
            return int(metrics.get("num_deleted_rows", 0) or 0)
        except CommitFailedError:
            time.sleep(0.1 * (attempt + 1))
    raise CommitFailedError(f"{table.table_uri}: {COMMIT_RETRIES} commit conflicts in a row")


def _remove_history(table: DeltaTable, column: str, ids: set[str]) -> int:
    """Remove from storage the files that the table's log dropped (tombstones: only older
    versions read them) holding any of `ids` in `column`. Not a vacuum: that would also take
    the files no purge asked for, and (in full mode) files a running sink wrote and has not
    committed yet; these are only the files the log itself dropped."""
    root = table.table_uri.rstrip("/")
    removed = 0
    dropped = table.vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False)
    for relative in sorted(dropped):
        fs, path = pafs.FileSystem.from_uri(f"{root}/{relative}")
        try:
            held = pq.read_table(path, columns=[column], filesystem=fs).column(column)
        except FileNotFoundError:
            continue  # removed by an earlier run of the same purge
        if ids.intersection(held.to_pylist()):
            fs.delete_file(path)
            removed += 1
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
            # Files hold no partition column (resource_type): an older file holding another
            # type's resource of one of these ids goes too (only time travel loses it).
            column, ids = "resource_id", {i for of_type in by_type.values() for i in of_type}
        else:
            ids = by_type.get(target.resource, set())
            if ids and target.name.startswith("deidentified/") and deidentifier is not None:
                key = deidentifier.key(target.resource)
                ids = {key(i) for i in ids}
            predicate = f"_resource_id IN ({_quoted(ids)})" if ids else ""
            column = "_resource_id"
        if not predicate:
            continue
        rows = _delete(target.table, predicate)
        if rows:
            deleted[target.name] = rows
        files_removed += _remove_history(target.table, column, ids)
    return deleted, files_removed
