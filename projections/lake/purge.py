"""Removing resources' rows from the lake's tables for good: a Delta delete, then every file an
older version still reads that holds them (the ones the delete dropped, and the ones earlier
updates, deletes and compactions dropped) is removed from storage, so the rows cannot come
back by time travel either. Time travel to a version that read such a file fails from then on.

Used by `carelog erase` (projections/lake/erase.py: every table) and by the sink when a
Consent starts to deny the lake (projections/lake/consent.py: the de-identified tables).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from projections.lake.deidentify import Deidentifier
from projections.lake.tables import CONTENT_STATS_BELOW

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
    gone: set[str] = set()  # removed now, or before (an earlier run of the same purge)
    dropped = table.vacuum(retention_hours=0, dry_run=True, enforce_retention_duration=False)
    for relative in sorted(dropped):
        fs, path = pafs.FileSystem.from_uri(f"{root}/{relative}")
        held = _delete_if_holding(fs, path, column, ids)
        if held is not False:
            gone.add(relative)
        removed += held is True
    _scrub_statistics(table, gone)
    return removed


def _delete_if_holding(fs: pafs.FileSystem, path: str, column: str, ids: set[str]) -> bool | None:
    """Delete the data file at `path` if `column` holds any of `ids`: True if deleted here,
    False if it holds none, None if it is gone already (an earlier run of the same purge, or
    another purge of the same resources at once: the sink's and the erasure's)."""
    try:
        held = pq.read_table(path, columns=[column], filesystem=fs).column(column)
        if not ids.intersection(held.to_pylist()):
            return False
        fs.delete_file(path)
    except FileNotFoundError:
        return None
    return True


def _scrub_statistics(table: DeltaTable, removed: set[str]) -> None:
    """Take the file statistics (min/max column values) of the removed files out of the
    table's log, for a table made before its statistics left content out (CONTENT_STATS_BELOW):
    the commits below that version, and every checkpoint (it copies the statistics of the
    files still live then). Statistics are optional in Delta; these files are gone anyway."""
    below = int(table.metadata().configuration.get(CONTENT_STATS_BELOW) or 0)
    if not below or not removed:
        return
    log_uri = table.table_uri.rstrip("/") + "/_delta_log"
    fs, log_dir = pafs.FileSystem.from_uri(log_uri)
    names = [info.base_name for info in fs.get_file_info(pafs.FileSelector(log_dir))]
    for name in names:
        path = f"{log_dir}/{name}"
        if name.endswith(".json") and name[:-5].isdigit() and int(name[:-5]) < below:
            _scrub_commit(fs, path, removed)
        elif ".checkpoint" in name and name.endswith(".parquet"):
            _scrub_checkpoint(fs, path, removed, log_dir)


def _scrub_commit(fs: pafs.FileSystem, path: str, removed: set[str]) -> None:
    with fs.open_input_stream(path) as source:
        lines = source.read().decode().splitlines()
    changed = False
    for i, line in enumerate(lines):
        action = json.loads(line) if line.strip() else {}
        add = action.get("add")
        if add and add.get("stats") and unquote(add["path"]) in removed:
            del add["stats"]
            lines[i] = json.dumps(action, separators=(",", ":"))
            changed = True
    if changed:
        _replace(fs, path, ("\n".join(lines) + "\n").encode())


def _scrub_checkpoint(fs: pafs.FileSystem, path: str, removed: set[str], log_dir: str) -> None:
    checkpoint = pq.read_table(path, filesystem=fs)
    add = checkpoint.column("add").combine_chunks()
    paths = pc.fill_null(add.field("path"), "")
    doomed = pc.is_in(
        paths, value_set=pa.array(sorted(removed) + sorted(quote(p) for p in removed))
    )
    doomed = pc.and_(doomed, pc.is_valid(add.field("stats")))
    if not pc.any(doomed).as_py():
        return
    fields = [
        pc.if_else(doomed, pa.nulls(len(add), pa.string()), add.field(i))
        if field.name == "stats" else add.field(i)
        for i, field in enumerate(add.type)
    ]  # fmt: skip
    scrubbed = pa.StructArray.from_arrays(fields, fields=list(add.type), mask=add.is_null())
    table = checkpoint.set_column(checkpoint.schema.get_field_index("add"), "add", scrubbed)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    _replace(fs, path, sink.getvalue().to_pybytes())
    _resize_last_checkpoint(fs, log_dir, path)


def _resize_last_checkpoint(fs: pafs.FileSystem, log_dir: str, checkpoint: str) -> None:
    """`_last_checkpoint` records its checkpoint's size: keep it true after a rewrite."""
    last = f"{log_dir}/_last_checkpoint"
    try:
        with fs.open_input_stream(last) as source:
            hint = json.loads(source.read())
    except (FileNotFoundError, OSError):
        return
    if checkpoint.endswith(f"{int(hint['version']):020d}.checkpoint.parquet"):
        hint["sizeInBytes"] = fs.get_file_info(checkpoint).size
        _replace(fs, last, json.dumps(hint).encode())


def _replace(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write `data` next to `path`, then move it over (readers see one or the other)."""
    temporary = f"{path}.{uuid.uuid4().hex}.scrub"  # two purges at once write their own
    with fs.open_output_stream(temporary) as out:
        out.write(data)
    fs.move(temporary, path)


def purge_resources(
    targets: Iterable[Target],
    resources: set[tuple[str, str]],
    deidentifier: Deidentifier | None,
    orphans_since: float | None = None,
) -> tuple[dict[str, int], int]:
    """Delete the resources' rows from `targets` (bronze by type and id, a silver table by
    `_resource_id`, hashed in the de-identified ones), then remove the files that held them:
    (rows per table, files removed). With `orphans_since` (a time.time()), also the files
    written since then that no version of the table adds (see `_remove_orphans`)."""
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
        if orphans_since is not None:
            files_removed += _remove_orphans(target.table, column, ids, orphans_since)
    return deleted, files_removed


def _remove_orphans(table: DeltaTable, column: str, ids: set[str], since: float) -> int:
    """Remove the data files written since `since` that the table's log does not name and
    that hold any of `ids`: a commit attempt that failed on a conflict (with the erasure's
    delete) leaves its files behind, in no log entry, where only a full vacuum would find
    them, after its retention period. The sink calls this for its own attempts; another
    writer's files still in flight hold no erased row unless it read them before the delete,
    and then its commit fails on the conflict too."""
    fs, base = pafs.FileSystem.from_uri(table.table_uri.rstrip("/"))
    # Tombstoned files holding the ids were removed by `_remove_history` just before; the
    # others written since are read here and kept.
    named = {unquote(uri.rsplit("/", 1)[-1]) for uri in table.file_uris()}
    removed = 0
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        if (
            info.type == pafs.FileType.File
            and info.base_name.endswith(".parquet")
            and "_delta_log" not in info.path
            and info.base_name not in named
            and info.mtime is not None
            and info.mtime.timestamp() >= since
        ):
            removed += _delete_if_holding(fs, info.path, column, ids) is True
    return removed
