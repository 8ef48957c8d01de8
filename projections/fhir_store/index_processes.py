"""A bulk build's index rows, extracted and written by other processes into the same file.

Index extraction and the index-row inserts are most of a rebuild's CPU; one process can
hand them off without pickling rows (which cost as much as extracting them): it sends each
resource's final JSON text of a batch (a few bytes objects per change), and each index
process parses, extracts and inserts that resource's rows itself, in its own transactions
on the same file. Resources are shared out by row id, so all the changes of one resource go
to one process, in log order. A bulk build is read by nobody until `finish_bulk`, so the
index rows may lag the resources while it runs; `finish` waits until every one is written.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from projections.fhir_store.errors import StoreError
from projections.fhir_store.extract import index_rows
from projections.fhir_store.index_sql import INSERT
from projections.fhir_store.schema import ALL_INDEX_TABLES, connect
from projections.fhir_store.wide_insert import insert_rows

# (row id, resource type, JSON of its last version in the batch or None when deleted,
#  whether it had index rows before this batch)
Item = tuple[int, str, str | None, bool]


class WriteTurns:
    """A lock every writer of a bulk build holds around its write transactions.

    SQLite's own wait for a lock sleeps and polls (up to 100 ms a try), which idled the
    writers; the kernel wakes a process waiting for this one as soon as it is released.
    """

    def __init__(self, store: Path | str) -> None:
        self.path = Path(f"{store}-turns")
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)

    @contextmanager
    def turn(self) -> Iterator[None]:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


def write_items(conn: sqlite3.Connection, turns: WriteTurns, items: list[Item]) -> None:
    """Replace the index rows of these resources by those of their given state."""
    fresh: dict[str, list[tuple[Any, ...]]] = {t: [] for t in ALL_INDEX_TABLES}
    replaced = [rid for rid, _, _, existed in items if existed]
    for rid, rtype, text, _ in items:
        if text is not None:
            for table, rows in index_rows(rtype, orjson.loads(text), rid).items():
                fresh[table].extend(rows)
    with turns.turn():
        conn.execute("BEGIN IMMEDIATE")
        try:
            if replaced:
                for table in ALL_INDEX_TABLES:
                    conn.executemany(f"DELETE FROM {table} WHERE rid = ?", [(r,) for r in replaced])
            for table, rows in fresh.items():
                insert_rows(conn, INSERT[table], rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def _serve(path: str, requests: Connection, replies: Connection) -> None:
    """An index process: write what arrives until told to finish (None) or the builder goes."""
    try:
        conn = connect(path, bulk=True)
        turns = WriteTurns(path)
        while True:
            try:
                items = requests.recv()
            except EOFError:  # the builder is gone: its file is thrown away
                return
            if items is None:
                break
            write_items(conn, turns, items)
        conn.close()
        replies.send(None)
    except BaseException:
        replies.send(traceback.format_exc())


_MAIN = f"from {__name__} import main; main()"


class _Process:
    """One index process: a fresh interpreter (not a fork: the builder may run Kafka's
    threads) with a pipe each way."""

    def __init__(self, path: Path) -> None:
        theirs_in, mine_out = os.pipe()
        mine_in, theirs_out = os.pipe()
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
        }
        self.popen = subprocess.Popen(
            [sys.executable, "-c", _MAIN, str(path), str(theirs_in), str(theirs_out)],
            pass_fds=(theirs_in, theirs_out),
            env=env,
        )
        os.close(theirs_in)
        os.close(theirs_out)
        self.requests = Connection(mine_out, readable=False)
        self.replies = Connection(mine_in, writable=False)


class IndexProcesses:
    """`count` processes writing the index rows of a bulk build at `path`."""

    def __init__(self, path: Path, count: int) -> None:
        self.turns = WriteTurns(path)  # the builder's
        self._processes = [_Process(path) for _ in range(count)]

    def send(self, items: list[Item]) -> None:
        """Hand over one batch's resources (in log order per resource)."""
        count = len(self._processes)
        shares: list[list[Item]] = [[] for _ in range(count)]
        for item in items:
            shares[item[0] % count].append(item)
        for process, share in zip(self._processes, shares, strict=True):
            if share:
                self._send(process, share)

    def finish(self) -> None:
        """Wait until every index row sent is written; raise StoreError if one failed."""
        for process in self._processes:
            self._send(process, None)
        for process in self._processes:
            self._fail_unless_finished(process)
        self.close()

    def _send(self, process: _Process, items: list[Item] | None) -> None:
        try:
            process.requests.send(items)
        except (BrokenPipeError, ConnectionResetError):
            self._fail_unless_finished(process)

    def _fail_unless_finished(self, process: _Process) -> None:
        """Raise what `process` failed with, unless its answer says it finished."""
        try:
            reply = process.replies.recv()
        except (EOFError, ConnectionResetError):
            reply = f"it exited with {process.popen.wait()} without saying why"
        if reply is not None:
            self.close()
            raise StoreError(f"an index process of the bulk build failed: {reply}")

    def close(self) -> None:
        """Stop the processes (those of a finished build have exited already)."""
        for process in self._processes:
            process.requests.close()  # a running one reads the end of its input and exits
            process.replies.close()
        for process in self._processes:
            try:
                process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
        self._processes.clear()
        if self.turns.path.exists():
            self.turns.close()
            self.turns.path.unlink()


def main() -> None:
    """An index process's entry point: `main <store file> <request fd> <reply fd>`."""
    _serve(
        sys.argv[1],
        Connection(int(sys.argv[2]), writable=False),
        Connection(int(sys.argv[3]), readable=False),
    )
