"""Taking data out of a SQLite file for good (`carelog erase`): deleted rows leave no free
page behind (VACUUM, or secure_delete) and no frame of the write-ahead log, which keeps the
pages as they were before a change until a checkpoint empties it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def erasing(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes data out for good: committed, then VACUUM rewrites the
    file (no free page keeps what it held) and the write-ahead log is emptied."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("VACUUM")
    clear_wal(conn)


class WalNotCleared(RuntimeError):
    """Readers kept the write-ahead log from being emptied (it still holds erased pages)."""


def clear_wal(conn: sqlite3.Connection, seconds: float = 60.0) -> None:
    """Copy the write-ahead log into the file and truncate it to nothing. A reader in the
    middle of a query holds the log's older pages, so this waits (briefly, as reads are) until
    none does."""
    deadline = time.monotonic() + seconds
    while True:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if not busy:
            return
        if time.monotonic() > deadline:
            raise WalNotCleared(
                f"the write-ahead log of {where(conn)} could not be emptied in {seconds:.0f} s: "
                "readers held it; run the erasure again (it is idempotent) when they are done"
            )
        time.sleep(0.05)


def where(conn: sqlite3.Connection) -> str:
    """The file of a connection's main database."""
    row = conn.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row else "?"
