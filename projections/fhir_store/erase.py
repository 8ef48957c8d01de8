"""Removing resources from the FHIR store for good: every version, index row and rejection.

Used by `carelog erase` (api/erasure/erase.py) once the data keys are shredded, so the projection
that folds the log can no longer bring them back (it skips erased events).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from streams.sqlite_erase import erasing

INDEX_TABLES = ("ix_string", "ix_token", "ix_date", "ix_reference", "ix_number", "ix_uri")


@dataclass(frozen=True)
class StoreErased:
    resources: int
    versions: int
    rejections: int


def erase_from_store(
    conn: sqlite3.Connection,
    resources: Iterable[tuple[str, str]],
    inbound_event_ids: Iterable[str],
) -> StoreErased:
    """Delete `resources` (type, id) with all their versions and index rows, and the
    rejections of `inbound_event_ids`, in one transaction; then VACUUM so the pages that held
    them are rewritten rather than left free in the file, and empty the write-ahead log:
    until a checkpoint, the pages as they were before (the erased rows in them) stay in it."""
    keys = sorted(set(resources))
    inbound = sorted(set(inbound_event_ids))
    with erasing(conn):
        rids = [
            row[0]
            for key in keys
            for row in conn.execute("SELECT rid FROM resources WHERE type = ? AND id = ?", key)
        ]
        versions = 0
        for rid in rids:
            versions += conn.execute("DELETE FROM versions WHERE rid = ?", (rid,)).rowcount
            for table in INDEX_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE rid = ?", (rid,))
            conn.execute("DELETE FROM resources WHERE rid = ?", (rid,))
        rejections = sum(
            conn.execute("DELETE FROM rejections WHERE original_event_id = ?", (i,)).rowcount
            for i in inbound
        )
    return StoreErased(len(rids), versions, rejections)
