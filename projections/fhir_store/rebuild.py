"""Rebuilding the store from offset 0, and proving a rebuild equals the live store.

`rebuild` folds the whole log into a fresh file beside the store (a bulk build: no journal,
search indexes created after the load, index rows written by other processes), then swaps
it in with one rename (readers that have the old file open keep reading it). `verify` folds the log into a fresh file up to exactly
the offsets the live store has applied, and compares every resource, every version and
every rejection of both, in (type, id, version) order.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from projections.fhir_store.runner import RunStats, consume, writer_lock
from projections.fhir_store.schema import connect
from projections.fhir_store.store import FhirStore
from streams.settings import Settings

_ROWS = (
    "SELECT r.type, r.id, v.version, r.version, r.deleted, r.last_updated, v.deleted, "
    "v.last_updated, v.content_hash, v.event_id, v.inbound_event_id, v.json "
    "FROM resources r JOIN versions v ON v.rid = r.rid ORDER BY r.type, r.id, v.version"
)
_REJECTIONS = (
    "SELECT event_id, original_event_id, stage, reason, operation_outcome, rejected_at "
    "FROM rejections ORDER BY event_id"
)
_COLUMNS = ("current version", "deleted", "last_updated", "version deleted",
            "version last_updated", "content_hash", "event_id", "inbound_event_id", "json")  # fmt: skip


def _fresh(path: Path, label: str) -> Path:
    fresh = path.with_name(f"{path.name}.{label}-{os.getpid()}")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{fresh}{suffix}").unlink(missing_ok=True)
    return fresh


def _close_cleanly(store: FhirStore) -> None:
    """Checkpoint the WAL into the file so the file alone is the store, then close."""
    conn = store._conn()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()


def rebuild(path: Path, settings: Settings) -> RunStats:
    """Rebuild the store at `path` from offset 0 and swap it in atomically."""
    with writer_lock(path):
        fresh = _fresh(path, "rebuild")
        store = FhirStore.open(
            fresh, bulk=True, index_processes=settings.store.rebuild_index_processes
        )
        try:
            stats = consume(store, settings, caught_up=True)
            store.finish_bulk()
        except BaseException:
            store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{fresh}{suffix}").unlink(missing_ok=True)
            raise
        _close_cleanly(store)
        os.replace(fresh, path)
        for suffix in ("-wal", "-shm"):  # the old file's: it was closed by its writer
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return stats


@dataclass
class Comparison:
    equal: bool
    live_digest: str
    rebuilt_digest: str
    resources: int
    versions: int
    rejections: int
    differences: list[str] = field(default_factory=list)


def _rows(conn: sqlite3.Connection, sql: str) -> Iterator[tuple[Any, ...]]:
    yield from conn.execute(sql)


def compare(live: sqlite3.Connection, rebuilt: sqlite3.Connection, limit: int = 10) -> Comparison:
    """Compare two stores row by row; a digest of each side and the first differences."""
    digests = [hashlib.sha256(), hashlib.sha256()]
    differences: list[str] = []
    keys: set[tuple[str, str]] = set()
    versions = rejections = 0
    for label, sql in (("version", _ROWS), ("rejection", _REJECTIONS)):
        left, right = _rows(live, sql), _rows(rebuilt, sql)
        a, b = next(left, None), next(right, None)
        while a is not None or b is not None:
            width = 3 if label == "version" else 1
            ka = a[:width] if a is not None else None
            kb = b[:width] if b is not None else None
            if a is not None and (b is None or ka < kb):  # type: ignore[operator]
                differences.append(f"{label} {ka} only in the live store")
                digests[0].update(repr(a).encode())
                a = next(left, None)
                continue
            if b is not None and (a is None or kb < ka):  # type: ignore[operator]
                differences.append(f"{label} {kb} only in the rebuilt store")
                digests[1].update(repr(b).encode())
                b = next(right, None)
                continue
            assert a is not None and b is not None
            digests[0].update(repr(a).encode())
            digests[1].update(repr(b).encode())
            if a != b:
                names = (
                    _COLUMNS
                    if label == "version"
                    else ("", "original", "stage", "reason", "outcome", "at")
                )
                offset = 3 if label == "version" else 1
                fields = [names[i - offset] for i in range(offset, len(a)) if a[i] != b[i]]
                differences.append(f"{label} {ka} differs in {', '.join(fields)}")
            if label == "version":
                versions += 1
                keys.add((a[0], a[1]))
            else:
                rejections += 1
            a, b = next(left, None), next(right, None)
    live_digest, rebuilt_digest = (d.hexdigest() for d in digests)
    return Comparison(
        equal=not differences and live_digest == rebuilt_digest,
        live_digest=live_digest,
        rebuilt_digest=rebuilt_digest,
        resources=len(keys),
        versions=versions,
        rejections=rejections,
        differences=differences[:limit],
    )


def verify(path: Path, settings: Settings) -> Comparison:
    """Rebuild into a fresh file up to the live store's offsets and compare the two."""
    live = FhirStore.open(path, readonly=True)
    fresh = _fresh(path, "verify")
    rebuilt = FhirStore.open(fresh, bulk=True)
    try:
        live_conn = live._conn()
        live_conn.execute("BEGIN")  # one snapshot of the live store for offsets and rows
        targets = {
            (t, p): o
            for t, p, o in live_conn.execute("SELECT topic, partition, offset FROM offsets")
        }
        consume(rebuilt, settings, until=targets)  # compared, never searched: no indexes
        rebuilt_conn = connect(fresh, readonly=True)
        try:
            return compare(live_conn, rebuilt_conn)
        finally:
            rebuilt_conn.close()
            live_conn.execute("COMMIT")
    finally:
        live.close()
        rebuilt.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{fresh}{suffix}").unlink(missing_ok=True)
