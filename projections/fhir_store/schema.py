"""The SQLite layout of the FHIR store, and opening a connection to it.

`resources` has one row per resource (its current version, or its deletion); `versions`
one per version (JSON included) for vread and _history. The index tables are keyed by
the resource's row id (`rid`) first so a resource's rows are deleted and sorted on cheaply,
with a second index by (param, value, rid) for searching. `offsets` holds, per
topic-partition, the last offset applied: written in the same transaction as the state.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from projections.fhir_store.definitions import Registry
from projections.fhir_store.errors import RebuildRequired, StoreError

SCHEMA_VERSION = "1"

# The tables, with the keys the writer looks rows up by.
TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL, partition INTEGER NOT NULL, offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS search_params (
    pid INTEGER PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    expression TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS resources (
    rid INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    lu INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS resources_key ON resources (type, id);
CREATE TABLE IF NOT EXISTS versions (
    rid INTEGER NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    lu INTEGER NOT NULL,
    json TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    event_id TEXT NOT NULL,
    inbound_event_id TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS versions_key ON versions (rid, version);
CREATE TABLE IF NOT EXISTS rejections (
    event_id TEXT PRIMARY KEY,
    original_event_id TEXT,
    stage TEXT NOT NULL,
    reason TEXT NOT NULL,
    operation_outcome TEXT NOT NULL,
    rejected_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS ix_string (
    rid INTEGER NOT NULL, pid INTEGER NOT NULL, norm TEXT NOT NULL, exact TEXT NOT NULL,
    PRIMARY KEY (rid, pid, norm, exact)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_token (
    rid INTEGER NOT NULL, pid INTEGER NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (rid, pid, code, system, text)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_date (
    rid INTEGER NOT NULL, pid INTEGER NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
    PRIMARY KEY (rid, pid, lo, hi)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_reference (
    rid INTEGER NOT NULL, pid INTEGER NOT NULL, ttype TEXT NOT NULL, tid TEXT NOT NULL,
    url TEXT NOT NULL,
    PRIMARY KEY (rid, pid, ttype, tid, url)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_number (
    rid INTEGER NOT NULL, pid INTEGER NOT NULL, value REAL NOT NULL, system TEXT NOT NULL,
    code TEXT NOT NULL, unit TEXT NOT NULL,
    PRIMARY KEY (rid, pid, value, system, code, unit)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ix_uri (
    rid INTEGER NOT NULL, pid INTEGER NOT NULL, uri TEXT NOT NULL,
    PRIMARY KEY (rid, pid, uri)
) WITHOUT ROWID;
"""

# The indexes only reads use: a bulk build creates them after loading (sorting once is
# much cheaper than inserting row by row into every index).
SEARCH_INDEXES = """
CREATE INDEX IF NOT EXISTS resources_lu ON resources (type, lu);
CREATE INDEX IF NOT EXISTS versions_lu ON versions (lu);
CREATE INDEX IF NOT EXISTS versions_inbound ON versions (inbound_event_id);
CREATE INDEX IF NOT EXISTS rejections_original ON rejections (original_event_id);
CREATE INDEX IF NOT EXISTS ix_string_value ON ix_string (pid, norm, rid);
CREATE INDEX IF NOT EXISTS ix_token_value ON ix_token (pid, code, system, rid);
CREATE INDEX IF NOT EXISTS ix_date_lo ON ix_date (pid, lo, hi, rid);
CREATE INDEX IF NOT EXISTS ix_reference_target ON ix_reference (pid, tid, ttype, rid);
CREATE INDEX IF NOT EXISTS ix_number_value ON ix_number (pid, value, rid);
CREATE INDEX IF NOT EXISTS ix_uri_value ON ix_uri (pid, uri, rid);
"""

DDL = TABLES + SEARCH_INDEXES

# Parameter kind -> (index table, its columns after rid and pid).
INDEX_TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "string": ("ix_string", ("norm", "exact")),
    "token": ("ix_token", ("system", "code", "text")),
    "date": ("ix_date", ("lo", "hi")),
    "reference": ("ix_reference", ("ttype", "tid", "url")),
    "quantity": ("ix_number", ("value", "system", "code", "unit")),
    "number": ("ix_number", ("value", "system", "code", "unit")),
    "uri": ("ix_uri", ("uri",)),
}
ALL_INDEX_TABLES = sorted({table for table, _ in INDEX_TABLES.values()})

# Pages of 16 KiB rather than SQLite's 4 KiB: a version row (its JSON) is about 1 KB, and
# the index B-trees get shallower. Measured against 4 KiB in paired runs: rebuild 0.87x the
# time (0.95x through bench_fhir_store on a slower host), live apply in batches of 5,000
# 1.18x the rate (1.08x) and of 10 alike, reads 0.7x and searches 0.6-0.7x the time; 32 and
# 64 KiB cost small live batches 0.78x and 0.53x (docs/figures.md). Only a new file takes
# it: an existing store keeps the size it was made with.
PAGE_SIZE = 16_384
# A bulk build's writers (the builder and its index processes) wait for each other's batch,
# which on a loaded machine can take seconds: the wait allowed is long (nobody else writes).
_BUSY_MS = 10_000
_BULK_BUSY_MS = 600_000


def connect(path: Path | str, readonly: bool = False, bulk: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode; read-only connections never write, nor create the file.

    `bulk`: for building a fresh file that nobody reads until it is finished (a rebuild):
    no journal and no syncing. A crash leaves a broken file, which the rebuild deletes;
    `finish_bulk` puts the file in WAL mode once it is complete.
    """
    if readonly:
        # Not mode=ro: a reader of a WAL database must be able to create the -shm file when
        # no writer is running. query_only keeps this connection from writing.
        if not Path(path).exists():
            raise StoreError(f"no FHIR store at {path}")
        try:
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot open the FHIR store {path}: {exc}") from exc
        conn.execute("PRAGMA query_only = 1")
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # Before anything is written or WAL mode is set, either of which fixes the size.
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
        if bulk:
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            # A commit survives a crash of the process (the WAL is written); an OS crash may
            # lose the last transactions, which the log replays: offsets travel with state.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
    conn.execute(f"PRAGMA busy_timeout = {_BULK_BUSY_MS if bulk else _BUSY_MS}")
    conn.execute("PRAGMA mmap_size = 1073741824")
    _tune_for_use(conn)
    return conn


def _tune_for_use(conn: sqlite3.Connection) -> None:
    """What reads and applying use; also what `finish_bulk` restores after sorting."""
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB per connection
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA threads = 0")


def _tune_for_sorting(conn: sqlite3.Connection) -> None:
    """CREATE INDEX sorts in runs the size of the page cache, in temp storage. The cache and
    in-memory temp storage that suit applying made building the indexes of 1,000,000
    resources take 18.3 s; SQLite's defaults (2 MiB, temp files the OS caches) with a sorter
    thread a core, 7.6 s (docs/figures.md)."""
    conn.execute("PRAGMA cache_size = -2000")
    conn.execute("PRAGMA temp_store = FILE")
    conn.execute(f"PRAGMA threads = {os.cpu_count() or 1}")


def initialize(conn: sqlite3.Connection, registry: Registry, bulk: bool = False) -> None:
    """Create the tables, or check an existing store matches this code's definitions.

    `bulk` leaves out the search indexes (`finish_bulk` creates them after the load).
    """
    conn.executescript(TABLES if bulk else DDL)
    rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if not rows:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [("schema_version", SCHEMA_VERSION), ("definitions", registry.digest)],
        )
        conn.executemany(
            "INSERT INTO search_params (pid, type, name, kind, expression) VALUES (?, ?, ?, ?, ?)",
            [(p.pid, p.base, p.name, p.kind, p.expression) for p in registry.by_pid.values()],
        )
        conn.execute("COMMIT")
        return
    check_compatible(rows, registry)


def finish_bulk(conn: sqlite3.Connection) -> None:
    """Create the search indexes of a bulk-built store and put it in WAL mode."""
    _tune_for_sorting(conn)
    conn.executescript(SEARCH_INDEXES)
    _tune_for_use(conn)
    conn.execute("PRAGMA journal_mode = WAL")


def check_compatible(meta: dict[str, str], registry: Registry) -> None:
    if meta.get("schema_version") != SCHEMA_VERSION or meta.get("definitions") != registry.digest:
        raise RebuildRequired(
            "the FHIR store was built by another version of carelog (schema "
            f"{meta.get('schema_version')}, definitions {meta.get('definitions')}; this code: "
            f"{SCHEMA_VERSION}, {registry.digest}): run `carelog projection rebuild`"
        )
