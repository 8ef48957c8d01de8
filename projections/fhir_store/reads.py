"""Reading resources and versions back out of the store's tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from projections.fhir_store.models import StoredResource

CURRENT = (
    "SELECT r.rid, r.type, r.id, r.version, r.deleted, r.last_updated, v.json "
    "FROM resources r JOIN versions v ON v.rid = r.rid AND v.version = r.version "
)
VERSION = (
    "SELECT r.rid, r.type, r.id, v.version, v.deleted, v.last_updated, v.json "
    "FROM versions v JOIN resources r ON r.rid = v.rid "
)
_CHUNK = 500


def stored(row: Sequence[Any]) -> StoredResource:
    """A StoredResource from a (rid, type, id, version, deleted, last_updated, json) row."""
    return StoredResource(
        resource_type=row[1],
        id=row[2],
        version=row[3],
        deleted=bool(row[4]),
        last_updated=datetime.fromisoformat(row[5]),
        json=row[6],
    )


def current_by_rids(conn: sqlite3.Connection, rids: Sequence[int]) -> dict[int, StoredResource]:
    """The current version of each row id (deleted ones included: callers filter)."""
    out: dict[int, StoredResource] = {}
    for start in range(0, len(rids), _CHUNK):
        chunk = rids[start : start + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(f"{CURRENT} WHERE r.rid IN ({marks})", chunk):
            out[row[0]] = stored(row)
    return out


def rids_of(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> list[int]:
    """Row ids of live (not deleted) resources given as (type, id), in the order given."""
    out = []
    for key in keys:
        row = conn.execute(
            "SELECT rid FROM resources WHERE type = ? AND id = ? AND deleted = 0", key
        ).fetchone()
        if row is not None:
            out.append(row[0])
    return out
