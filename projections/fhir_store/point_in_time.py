"""Point-in-time reads (`_at`) from the version history.

A version is current from its lastUpdated until the next version's lastUpdated (a
deletion is a version too: the resource is gone from then on). The search indexes hold
current versions only, so a search as of a past time can only select by type and id: it
walks the versions table, not the indexes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from projections.fhir_store.fhir_dates import instant_us
from projections.fhir_store.models import StoredResource
from projections.fhir_store.reads import VERSION, stored
from projections.fhir_store.search_limits import MAX_OFFSET

# The version of r current at ? (microseconds): the highest one last updated by then.
_VERSION_AT = "(SELECT max(n.version) FROM versions n WHERE n.rid = r.rid AND n.lu <= ?)"
# When version v stopped being current: the next version's lastUpdated, if there is one.
NEXT_LU = (
    "coalesce((SELECT n.lu FROM versions n WHERE n.rid = v.rid AND n.version > v.version "
    "ORDER BY n.version LIMIT 1), 9223372036854775807)"
)


def version_at(
    conn: sqlite3.Connection, resource_type: str, resource_id: str, at_us: int
) -> StoredResource | None:
    """The version current at `at_us` (deleted=True if it was deleted then), None if the
    resource did not exist yet."""
    row = conn.execute(
        f"{VERSION} WHERE r.type = ? AND r.id = ? AND v.version = {_VERSION_AT}",
        (resource_type, resource_id, at_us),
    ).fetchone()
    return None if row is None else stored(row)


def current_during(versions: Sequence[StoredResource], lo_us: int, hi_us: int) -> set[int]:
    """Version numbers, of one resource's `versions` (every one, oldest first), that were
    current at some moment of [lo_us, hi_us]."""
    out = set()
    for index, version in enumerate(versions):
        start = _us(version)
        end = _us(versions[index + 1]) if index + 1 < len(versions) else None
        if start <= hi_us and (end is None or end > lo_us):
            out.add(version.version)
    return out


def _us(version: StoredResource) -> int:
    return instant_us(version.last_updated.isoformat())


def search_at(
    conn: sqlite3.Connection,
    resource_type: str,
    at_us: int,
    ids: list[str] | None,
    count: int,
    offset: int,
) -> tuple[list[StoredResource], int]:
    """The resources of a type that existed (not deleted) at `at_us`, as they were then,
    ordered by id; `ids` limits them. Returns (the page, how many in all)."""
    where = f"r.type = ? AND v.version = {_VERSION_AT} AND v.deleted = 0"
    args: list[object] = [resource_type, at_us]
    if ids is not None:
        where += " AND r.id IN (SELECT value FROM json_each(?))"
        args.append(orjson.dumps(ids).decode())
    total = conn.execute(
        f"SELECT count(*) FROM resources r JOIN versions v ON v.rid = r.rid WHERE {where}", args
    ).fetchone()[0]
    rows = conn.execute(
        f"{VERSION} WHERE {where} ORDER BY r.id LIMIT ? OFFSET ?",
        [*args, count, min(offset, MAX_OFFSET)],
    ).fetchall()
    return [stored(r) for r in rows], total
