"""Folding a batch of log records into the store, with their offsets, in one transaction.

The fold: a `ResourceChanged` whose version is above the stored one becomes a new row in
`versions` and the current state in `resources`, and replaces the resource's index rows; a
version at or below the stored one changes nothing (the processors never invent versions,
so it can only be a replay). A `Rejected` is recorded by the inbound event it rejects.
Records at or below the stored offset of their partition are skipped: a batch re-read
after a crash applies exactly the part that was not committed.

Per batch, not per record: stored versions are looked up with `IN (...)` per resource type,
index rows are extracted once per resource from its last state in the batch, and of a
resource stored before, only the index rows that differ are deleted and inserted. Events
are decoded plain (schemas/codec.py: times as microseconds, the operation as its symbol),
with no datetime or event object made per change: a third of the decode's cost.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from projections.fhir_store.extract import index_rows
from projections.fhir_store.fhir_dates import DateFormatError, from_us, instant_us
from projections.fhir_store.index_processes import IndexProcesses, Item
from projections.fhir_store.index_sql import DELETE, INSERT, SELECT
from projections.fhir_store.schema import ALL_INDEX_TABLES
from projections.fhir_store.wide_insert import insert_rows
from schemas.codec import AvroCodec
from schemas.errors import CodecError
from schemas.events import Operation, Rejected, ResourceChanged
from streams.privacy.envelope import KeyMemo, open_record, shredded

log = logging.getLogger(__name__)

Record = tuple[str, int, int, bytes | None]  # topic, partition, offset, value

_LOOKUP_CHUNK = 500  # ids per `IN (...)` when looking up stored versions and index rows
_codec = AvroCodec()
_CHANGED: Final = ResourceChanged.__name__
_REJECTED: Final = Rejected.__name__
_DELETE_OP: Final = Operation.delete.value


@dataclass
class Applied:
    """What one batch did."""

    records: int = 0
    versions: int = 0
    skipped_versions: int = 0  # replays of versions already stored
    rejections: int = 0
    undecodable: int = 0
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _last_updated(resource: dict[str, Any] | None, recorded_at_us: int) -> tuple[str, int]:
    """The version's meta.lastUpdated (text, microseconds) when it is a valid instant, else
    the time it was recorded (µs since the epoch)."""
    if resource is not None:
        stated = (resource.get("meta") or {}).get("lastUpdated")
        if type(stated) is str:
            try:
                return stated, instant_us(stated)
            except DateFormatError:
                pass
    text = _iso(from_us(recorded_at_us))
    return text, instant_us(text)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is folded.

    A batch makes a few hundred thousand short-lived dicts, lists and tuples (decoded
    events, parsed resources, index rows) that reference counting frees; the collector's
    passes over them, and over everything else the process holds, cost about a fifth of
    the apply. Cycles made meanwhile are collected once it is back on.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class _Current:
    rid: int
    version: int
    existed: bool  # had index rows before this batch
    resource: dict[str, Any] | None = None  # final state in this batch (None: deleted)
    text: str | None = None  # its JSON
    touched: bool = False


class Applier:
    """The single writer of a store: applies batches of records, offsets included."""

    def __init__(
        self, conn: sqlite3.Connection, index_processes: IndexProcesses | None = None
    ) -> None:
        """`index_processes` (a bulk build's): they write the index rows, not this one."""
        self._conn = conn
        self._index_processes = index_processes
        self._offsets: dict[tuple[str, int], int] = {
            (t, p): o for t, p, o in conn.execute("SELECT topic, partition, offset FROM offsets")
        }
        self._next_rid = (conn.execute("SELECT max(rid) FROM resources").fetchone()[0] or 0) + 1

    @property
    def offsets(self) -> dict[tuple[str, int], int]:
        return dict(self._offsets)

    def apply(self, records: Sequence[Record]) -> Applied:
        """Apply records (in log order per partition) in one transaction."""
        with _collector_paused():
            return self._apply(records)

    def _apply(self, records: Sequence[Record]) -> Applied:
        conn = self._conn
        result = Applied()
        offsets = dict(self._offsets)
        events: list[tuple[str, dict[str, Any]]] = []  # (record name, plain Avro record)
        opened_with: set[str] = set()  # the keys that opened them (`shredded` below)
        ciphers: KeyMemo = {}
        for topic, partition, offset, value in records:
            tp = (topic, partition)
            if offset <= offsets.get(tp, -1):
                continue
            offsets[tp] = offset
            result.records += 1
            try:
                name, event = _codec.decode(value or b"", plain=True)
            except CodecError as exc:
                result.undecodable += 1
                log.error("%s[%d]@%d: cannot decode, skipped: %s", topic, partition, offset, exc)
                continue
            if name in (_CHANGED, _REJECTED):
                if key_id := open_record(name, event, ciphers):
                    opened_with.add(key_id)
                if event["sealed"] is None:  # else erased (carelog erase): its key is gone
                    events.append((name, event))
        version_rows: list[tuple[Any, ...]] = []
        rejection_rows: list[tuple[Any, ...]] = []
        next_rid = self._next_rid
        # Read and folded before the write lock is taken: this applier is the only writer of
        # these tables (the writer lock), and a bulk build's index processes wait for the lock.
        current = self._stored(
            {(e["resource_type"], e["resource_id"]) for name, e in events if name == _CHANGED}
        )
        for name, event in events:
            if name == _REJECTED:
                rejection_rows.append((
                    event["event_id"], event.get("original_event_id"), event["stage"],
                    event["reason"], event["operation_outcome"],
                    _iso(from_us(event["rejected_at"])),
                ))  # fmt: skip
                result.rejections += 1
                continue
            state = current[(event["resource_type"], event["resource_id"])]
            if state.rid == 0:  # new to the store: row ids in order of first change
                state.rid = next_rid
                next_rid += 1
            version = event["version"]
            if version <= state.version:
                result.skipped_versions += 1
                continue
            text = event["resource"]
            deleted = event["operation"] == _DELETE_OP or text is None
            resource = None if deleted else orjson.loads(text or "{}")
            last_updated, lu = _last_updated(resource, event["recorded_at"])
            state.version = version
            state.resource = resource
            state.text = None if deleted else text
            state.touched = True
            version_rows.append((
                state.rid, version, int(deleted), last_updated, lu, "" if deleted else text,
                event["content_hash"], event["event_id"], event["inbound_event_id"],
            ))  # fmt: skip
            result.versions += 1
        processes = self._index_processes
        with nullcontext() if processes is None else processes.turns.turn():
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Under the write lock: `carelog erase` deletes a patient under it too, once
                # every process has seen the shred; a batch opened before must not put back
                # what it deleted. Read again, its events of that patient stay sealed.
                erased_since = shredded(opened_with)
                if not erased_since:
                    handed_off = self._write(current, version_rows, rejection_rows, offsets)
                    conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if erased_since:
                conn.execute("ROLLBACK")
        if erased_since:
            log.info("keys shredded while a batch was applied (%d): applying it again",
                     len(erased_since))  # fmt: skip
            return self._apply(records)
        if self._index_processes is not None and handed_off:
            # After the commit: an index process waits for this one's lock to write.
            self._index_processes.send(handed_off)
        self._offsets = offsets
        self._next_rid = next_rid
        result.offsets = dict(offsets)
        return result

    def _stored(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Current]:
        """The stored row id and version of each (type, id); rid 0 and version 0 if none."""
        found = {key: _Current(0, 0, existed=False) for key in keys}
        by_type: dict[str, list[str]] = {}
        for rtype, rid_id in keys:
            by_type.setdefault(rtype, []).append(rid_id)
        for rtype, ids in by_type.items():
            for i in range(0, len(ids), _LOOKUP_CHUNK):
                chunk = ids[i : i + _LOOKUP_CHUNK]
                rows = self._conn.execute(
                    "SELECT id, rid, version FROM resources WHERE type = ? AND id IN "
                    f"({', '.join('?' * len(chunk))})",
                    (rtype, *chunk),
                )
                for rid_id, rid, version in rows:
                    found[(rtype, rid_id)] = _Current(rid, version, existed=True)
        return found

    def _stored_rows(self, table: str, rids: list[int]) -> Iterator[tuple[Any, ...]]:
        """The rows `table` holds for these resources."""
        for i in range(0, len(rids), _LOOKUP_CHUNK):
            chunk = rids[i : i + _LOOKUP_CHUNK]
            yield from self._conn.execute(
                f"{SELECT[table]} IN ({', '.join('?' * len(chunk))})", chunk
            )

    def _write(
        self,
        current: dict[tuple[str, str], _Current],
        version_rows: list[tuple[Any, ...]],
        rejection_rows: list[tuple[Any, ...]],
        offsets: dict[tuple[str, int], int],
    ) -> list[Item] | None:
        """Write the batch; the resources whose index rows the index processes write."""
        conn = self._conn
        resource_rows = []
        fresh: dict[str, list[tuple[Any, ...]]] = {t: [] for t in ALL_INDEX_TABLES}
        replaced: dict[str, set[tuple[Any, ...]]] = {t: set() for t in ALL_INDEX_TABLES}
        replaced_rids: list[int] = []  # resources stored before this batch: rows may differ
        last_of = {row[0]: row for row in version_rows}  # rid -> its last version row
        handed_off: list[Item] | None = None if self._index_processes is None else []
        for (rtype, rid_id), state in current.items():
            if not state.touched:
                continue
            rid = state.rid
            row = last_of[rid]
            resource_rows.append((rid, rtype, rid_id, row[1], row[2], row[3], row[4]))
            if handed_off is not None:
                handed_off.append((rid, rtype, state.text, state.existed))
                continue
            if state.existed:
                replaced_rids.append(rid)
            if state.resource is None:
                continue
            for table, rows in index_rows(rtype, state.resource, rid).items():
                if state.existed:
                    replaced[table].update(rows)
                else:
                    fresh[table].extend(rows)
        for table in ALL_INDEX_TABLES:  # of stored resources, only the rows that differ
            new = replaced[table]
            old = set(self._stored_rows(table, replaced_rids))
            if old - new:
                conn.executemany(DELETE[table], old - new)
            fresh[table].extend(new - old)
        insert_rows(
            conn,
            "INSERT INTO versions (rid, version, deleted, last_updated, lu, json, content_hash, "
            "event_id, inbound_event_id)",
            version_rows,
        )
        insert_rows(
            conn,
            "INSERT INTO resources (rid, type, id, version, deleted, last_updated, lu)",
            resource_rows,
            " ON CONFLICT (rid) DO UPDATE SET version = excluded.version, "
            "deleted = excluded.deleted, last_updated = excluded.last_updated, lu = excluded.lu",
        )
        for table, added in fresh.items():
            insert_rows(conn, INSERT[table], added)
        if rejection_rows:
            conn.executemany(
                "INSERT OR IGNORE INTO rejections (event_id, original_event_id, stage, reason, "
                "operation_outcome, rejected_at) VALUES (?, ?, ?, ?, ?, ?)",
                rejection_rows,
            )
        changed = [(t, p, o) for (t, p), o in offsets.items() if self._offsets.get((t, p)) != o]
        conn.executemany(
            "INSERT INTO offsets (topic, partition, offset) VALUES (?, ?, ?) "
            "ON CONFLICT (topic, partition) DO UPDATE SET offset = excluded.offset",
            changed,
        )
        return handed_off
