"""The notifier's state, one SQLite file (WAL, synchronous FULL: safe across SIGKILL).

- `subscriptions`: each Subscription seen on the log, its status (requested, active, error,
  off), why it is in error, `matched` (events numbered so far: eventsSinceSubscriptionStart)
  and `delivered` (the last event number its endpoint acknowledged: its position).
- `outbox`: the numbered events of each subscription not yet delivered, in log order.
- `offsets`: how far the log has been matched.

The matcher writes outbox rows, counters and offsets in one transaction, so a batch re-read
after a crash numbers nothing twice; delivery moves `delivered` forward after the endpoint
answered, so a crash between the two sends those events again (at least once, in order).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from streams.privacy.envelope import shredded
from streams.sqlite_erase import erasing

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, json TEXT NOT NULL, status TEXT NOT NULL, error TEXT,
    matched INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,
    failures INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS outbox (
    sub_id TEXT NOT NULL, seq INTEGER NOT NULL, at TEXT NOT NULL, resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL, version INTEGER NOT NULL, resource TEXT,
    PRIMARY KEY (sub_id, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition));
"""


@dataclass(frozen=True)
class Event:
    """One numbered notification event of a subscription."""

    seq: int
    at: str  # when the change was recorded (ISO instant)
    resource_type: str
    resource_id: str
    version: int
    resource: str | None  # the version's JSON, from the log


@dataclass(frozen=True)
class SubscriptionRow:
    id: str
    json: str
    status: str
    error: str | None
    matched: int
    delivered: int
    failures: int


@dataclass
class Batch:
    """What one matched batch changes, committed together with its offsets."""

    offsets: dict[tuple[str, int], int]
    subscriptions: dict[str, tuple[str, str, str | None]]  # id -> (json, status, error)
    events: list[tuple[str, str, str, str, int, str | None]]  # sub, at, type, id, version, json
    # The key that opened each event's resource: one shredded since (an erasure came while
    # the batch was matched) leaves the event without its content, as the erasure does.
    keys: dict[tuple[str, str], str] = field(default_factory=dict)


class State:
    """Thread-safe: one connection per thread (the matcher's and the delivery loop's)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._local.conn = conn
        return conn

    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self._conn().execute("SELECT topic, partition, offset FROM offsets")
        return {(t, p): o for t, p, o in rows}

    def subscriptions(self) -> list[SubscriptionRow]:
        rows = self._conn().execute(
            "SELECT id, json, status, error, matched, delivered, failures FROM subscriptions"
        )
        return [SubscriptionRow(*row) for row in rows]

    def subscription(self, sub_id: str) -> SubscriptionRow | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, json, status, error, matched, delivered, failures FROM subscriptions "
                "WHERE id = ?",
                (sub_id,),
            )
            .fetchone()
        )
        return SubscriptionRow(*row) if row else None

    def commit(self, batch: Batch) -> None:
        """A matched batch: subscription changes, numbered events and offsets, atomically
        (the keys checked under the write lock, which `erase_resources` takes too)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sub_id, (body, status, error) in batch.subscriptions.items():
                conn.execute(
                    "INSERT INTO subscriptions (id, json, status, error) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET json = excluded.json, "
                    "status = excluded.status, error = excluded.error, failures = 0",
                    (sub_id, body, status, error),
                )
                if status == "off":  # nothing more is owed to it
                    conn.execute("DELETE FROM outbox WHERE sub_id = ?", (sub_id,))
            gone = shredded(set(batch.keys.values()))
            for sub_id, at, rtype, rid, version, resource in batch.events:
                if batch.keys.get((rtype, rid)) in gone:
                    resource = None
                (seq,) = conn.execute(
                    "UPDATE subscriptions SET matched = matched + 1 WHERE id = ? RETURNING matched",
                    (sub_id,),
                ).fetchone()
                conn.execute(
                    "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (sub_id, seq, at, rtype, rid, version, resource),
                )
            conn.executemany(
                "INSERT INTO offsets VALUES (?, ?, ?) ON CONFLICT (topic, partition) "
                "DO UPDATE SET offset = excluded.offset",
                [(t, p, o) for (t, p), o in batch.offsets.items()],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def pending(self, sub_id: str, limit: int) -> list[Event]:
        """The next events owed to a subscription, oldest first."""
        rows = self._conn().execute(
            "SELECT seq, at, resource_type, resource_id, version, resource FROM outbox "
            "WHERE sub_id = ? AND seq > (SELECT delivered FROM subscriptions WHERE id = ?) "
            "ORDER BY seq LIMIT ?",
            (sub_id, sub_id, limit),
        )
        return [Event(*row) for row in rows]

    def delivered(self, sub_id: str, seqs: Iterable[int]) -> None:
        """The endpoint took these events: move the position past them and mark it active."""
        last = max(seqs, default=None)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if last is not None:
                conn.execute(
                    "UPDATE subscriptions SET delivered = max(delivered, ?) WHERE id = ?",
                    (last, sub_id),
                )
                conn.execute("DELETE FROM outbox WHERE sub_id = ? AND seq <= ?", (sub_id, last))
            conn.execute(
                "UPDATE subscriptions SET status = 'active', error = NULL, failures = 0 "
                "WHERE id = ? AND status != 'off'",
                (sub_id,),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def failed(self, sub_id: str, error: str) -> int:
        """A delivery failed: status error with the reason; the failures in a row."""
        row = (
            self._conn()
            .execute(
                "UPDATE subscriptions SET status = 'error', error = ?, failures = failures + 1 "
                "WHERE id = ? AND status != 'off' RETURNING failures",
                (error[:500], sub_id),
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def erase_resources(self, resources: Iterable[tuple[str, str]]) -> int:
        """Take the content of these resources (erased) out of the events not yet delivered;
        the events stay numbered. Then the file and its write-ahead log are rewritten so the
        erased text is left in neither. How many events lost their content."""
        conn = self._conn()
        with erasing(conn):
            cleared = sum(
                conn.execute(
                    "UPDATE outbox SET resource = NULL WHERE resource_type = ? AND resource_id = ? "
                    "AND resource IS NOT NULL",
                    key,
                ).rowcount
                for key in sorted(set(resources))
            )
        return cleared

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
