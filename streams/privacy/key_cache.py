"""A process's copy of carelog.keys (the patient and type keys, still wrapped by the master
key) in SQLite, with the position it was read to: a restart reads only the key records that
came since, and the process keeps in memory only the keys it uses (streams/privacy/keystore).

The copy is derived from the topic and thrown away whenever it may not match it: a topic
made again (another topic id), or a copy older than half the topic's delete.retention.ms (a
shred's tombstone may have been compacted away meanwhile: the copy would keep a shredded
key). A shredded key is deleted with SQLite's secure_delete, and the write-ahead log is
truncated after it, so its wrapped bytes leave the file when the process reads the shred.
Each process has a file of its own (a lock per file): two would each skip records the other
wrote, shreds among them.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO

from streams.sqlite_erase import clear_wal

log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1  # a file of another layout is made again: it is only a copy
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    prefix TEXT NOT NULL,  -- patient:<id> of patient:<id>/<random>: one seek finds either
    key_id TEXT NOT NULL,
    wrapped BLOB NOT NULL,
    PRIMARY KEY (prefix, key_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS read_to (
    topic_id TEXT,
    position INTEGER NOT NULL,
    written_at REAL NOT NULL
);
"""


class KeyCache:
    """Wrapped keys by id and prefix, and the topic position they were read to. `directory`
    None keeps them in memory (nothing survives the process). Safe to use from several
    threads: the key store writes it on its own thread while lookups read it."""

    def __init__(
        self, directory: Path | None, topic: str, topic_id: str | None, max_age_seconds: float
    ) -> None:
        self._guard = threading.Lock()  # one statement or transaction at a time
        self._lock: IO[bytes] | None = None
        self.path: Path | None = None
        if directory is not None:
            self.path, self._lock = _free_slot(directory, topic)
        self._db = self._open()
        row = self._db.execute("SELECT topic_id, position, written_at FROM read_to").fetchone()
        if row is None or topic_id is None or row[0] != topic_id:
            self._reset(topic_id, "no copy of this topic" if row else "new")
        elif time.time() - row[2] > max_age_seconds:
            self._reset(topic_id, f"older than {max_age_seconds:.0f} s: shreds may be missed")
        self.position: int = self._db.execute("SELECT position FROM read_to").fetchone()[0]

    def _open(self) -> sqlite3.Connection:
        where = ":memory:" if self.path is None else str(self.path)
        try:
            return self._connect(where)
        except sqlite3.DatabaseError as exc:  # a damaged copy: it is only a copy
            assert self.path is not None
            log.warning("key cache %s unreadable (%s): read again from the topic", where, exc)
            for stale in (self.path, Path(f"{where}-wal"), Path(f"{where}-shm")):
                stale.unlink(missing_ok=True)
            return self._connect(where)

    @staticmethod
    def _connect(where: str) -> sqlite3.Connection:
        db = sqlite3.connect(where, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "secure_delete=ON"):
            db.execute(f"PRAGMA {pragma}")
        if db.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
            db.executescript("DROP TABLE IF EXISTS keys; DROP TABLE IF EXISTS read_to;")
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        db.executescript(_SCHEMA)
        db.execute("SELECT count(*) FROM read_to").fetchone()  # fails on a damaged file
        return db

    def _reset(self, topic_id: str | None, why: str) -> None:
        if self.path is not None:
            log.info("key cache %s: read from the start of the topic (%s)", self.path, why)
        self._db.execute("BEGIN")
        self._db.execute("DELETE FROM keys")
        self._db.execute("DELETE FROM read_to")
        self._db.execute(
            "INSERT INTO read_to (topic_id, position, written_at) VALUES (?, 0, ?)",
            (topic_id, time.time()),
        )
        self._db.execute("COMMIT")
        self._truncate_log()

    def write(self, records: list[tuple[str, bytes | None]], position: int) -> None:
        """Take key records (a None value shreds the key) read up to `position`."""
        shredded = [(prefix_of(k), k) for k, wrapped in records if wrapped is None]
        # In key order: neighbours share B-tree pages (15% less a key in batches of 1,000).
        kept = sorted((prefix_of(k), k, w) for k, w in records if w is not None)
        with self._guard:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO keys (prefix, key_id, wrapped) VALUES (?, ?, ?)", kept
            )
            self._db.executemany("DELETE FROM keys WHERE prefix = ? AND key_id = ?", shredded)
            self._db.execute(
                "UPDATE read_to SET position = ?, written_at = ?", (position, time.time())
            )
            self._db.execute("COMMIT")
            self.position = position
            if shredded:
                self._truncate_log()

    def still_reading(self) -> None:
        """Mark the copy current: this process has kept reading the topic until now."""
        with self._guard:
            self._db.execute("UPDATE read_to SET written_at = ?", (time.time(),))

    def _truncate_log(self) -> None:
        """Copy the write-ahead log into the file and empty it: the pages that held a
        shredded key are overwritten (secure_delete) and no old frame keeps them."""
        if self.path is not None:
            clear_wal(self._db)

    def get(self, key_id: str) -> bytes | None:
        with self._guard:
            row = self._db.execute(
                "SELECT wrapped FROM keys WHERE prefix = ? AND key_id = ?",
                (prefix_of(key_id), key_id),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def first_under(self, prefix: str) -> tuple[str, bytes] | None:
        """The first key `<prefix>/...` (key id, wrapped key), if there is one."""
        with self._guard:
            row = self._db.execute(
                "SELECT key_id, wrapped FROM keys WHERE prefix = ? ORDER BY key_id LIMIT 1",
                (prefix,),
            ).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    def under(self, prefix: str) -> list[str]:
        """Key ids `<prefix>/...`, in order."""
        with self._guard:
            rows = self._db.execute(
                "SELECT key_id FROM keys WHERE prefix = ? ORDER BY key_id", (prefix,)
            ).fetchall()
        return [r[0] for r in rows]

    def prefixes(self) -> Iterator[str]:
        """Every prefix with a key here, once each."""
        with self._guard:  # held until the last is taken: the caller takes them all
            for (prefix,) in self._db.execute("SELECT DISTINCT prefix FROM keys"):
                yield prefix

    def __len__(self) -> int:
        with self._guard:
            return int(self._db.execute("SELECT count(*) FROM keys").fetchone()[0])

    def close(self) -> None:
        with self._guard:
            self._db.close()
        if self._lock is not None:
            self._lock.close()  # releases the slot


def forget_in_every_copy(directory: Path, key_ids: Collection[str]) -> int:
    """Delete shredded keys from the copy of every process under `directory` (`carelog
    erase`): a running process deletes them itself when it reads the shreds, but a stopped
    one would keep their wrapped bytes in its file until it starts again. How many files held
    one. A file that does not open as a copy is left alone (its process reads anew)."""
    if not key_ids or not directory.is_dir():
        return 0
    pairs = [(prefix_of(k), k) for k in sorted(key_ids)]
    held = 0
    for path in sorted(directory.glob("*.sqlite")):
        db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA secure_delete=ON")
            db.execute("BEGIN IMMEDIATE")
            deleted = sum(
                db.execute("DELETE FROM keys WHERE prefix = ? AND key_id = ?", pair).rowcount
                for pair in pairs
            )
            db.execute("COMMIT")
            clear_wal(db)
        except sqlite3.DatabaseError as exc:
            log.warning("key cache %s not cleared (%s): its process reads it anew", path, exc)
            continue
        finally:
            db.close()
        held += deleted > 0
    return held


def prefix_of(key_id: str) -> str:
    """`patient:<id>` of `patient:<id>/<random>` (empty for a key id without one)."""
    return key_id.rpartition("/")[0]


def _free_slot(directory: Path, topic: str) -> tuple[Path, IO[bytes]]:
    """The first `<topic>.<n>.sqlite` in `directory` no other process holds, and its lock."""
    directory.mkdir(parents=True, exist_ok=True)
    for slot in range(1024):
        path = directory / f"{topic}.{slot}.sqlite"
        lock = open(f"{path}.lock", "wb")  # noqa: SIM115 - held for the cache's life
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        os.set_inheritable(lock.fileno(), False)
        return path, lock
    raise RuntimeError(f"no free key cache slot in {directory}: 1024 processes hold one each")
