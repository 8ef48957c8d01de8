"""Rebuilding in bulk, and updates that rewrite only the index rows that changed (no broker).

A bulk build (what `carelog projection rebuild` and `verify` fold into) skips the journal
and builds the search indexes after the load; the store it finishes must equal one built
change by change: every resource, version and rejection, every index row, every index;
also when index processes write its index rows (in batches: updates of resources stored by
an earlier batch replace their rows).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from projections.fhir_store import FhirStore, StoreError
from projections.fhir_store.rebuild import compare
from projections.fhir_store.schema import ALL_INDEX_TABLES, PAGE_SIZE, connect
from tests.projections import fhir_samples as samples
from tests.projections.fhir_store_support import Offsets, changed, rejected

Records = list[tuple[str, int, int, bytes]]


def _log() -> Records:
    """Creates, updates (index rows changing and not), deletes, replays and rejections."""
    events: list[Any] = []
    for n in range(12):
        pid, eid = f"p{n}", f"e{n}"
        events += [changed(samples.patient(pid, family=f"Fam{n % 3}", mrn=f"M{n}")),
                   changed(samples.encounter(eid, pid)),
                   changed(samples.observation(f"o{n}", pid, value=n)),
                   changed(samples.blood_pressure(f"bp{n}", pid))]  # fmt: skip
    for n in range(0, 12, 2):
        events.append(changed(samples.patient(f"p{n}", family="Renamed", mrn=f"M{n}"), 2))
        events.append(changed(samples.observation(f"o{n}", f"p{n}", value=n), 2))  # same rows
        events.append(changed(samples.observation(f"o{n}", f"p{n}", value=n + 0.5), 3))
    profiled = {**samples.patient("p5"), "meta": {"profile": ["http://example.org/P"]}}
    events.append(changed(profiled, 2))  # a uri index row
    events.append(changed(samples.encounter("e3", "p3"), 2, delete=True))
    events.append(changed(samples.patient("p4", family="Replayed"), 1))  # an old version
    events.append(rejected(events[0].inbound_event_id, "bad"))
    return list(Offsets().records(events))


def _rows(conn: sqlite3.Connection, sql: str) -> list[tuple[Any, ...]]:
    return sorted(conn.execute(sql).fetchall(), key=repr)


def _indexes(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return _rows(conn, "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE type = 'index'")


@pytest.mark.parametrize(("index_processes", "batch"), [(0, 10_000), (2, 7)])
def test_bulk_build_equals_change_by_change(
    tmp_path: Path, index_processes: int, batch: int
) -> None:
    records = _log()
    incremental = FhirStore.open(tmp_path / "live.sqlite")
    applier = incremental.applier()
    for i in range(0, len(records), 7):  # small batches: updates meet stored resources
        applier.apply(records[i : i + 7])
    incremental.close()

    bulk = FhirStore.open(tmp_path / "bulk.sqlite", bulk=True, index_processes=index_processes)
    bulk_conn = bulk._conn()
    assert bulk_conn.execute("PRAGMA journal_mode").fetchone()[0] == "off"
    searched = {row[0] for row in _indexes(bulk_conn)}
    assert "ix_token_value" not in searched  # built after the load, not row by row
    bulk_applier = bulk.applier()
    for i in range(0, len(records), batch):
        bulk_applier.apply(records[i : i + batch])
    bulk.finish_bulk()
    # The indexes are sorted with SQLite's small-cache settings; applying gets its own back.
    pragmas = [bulk_conn.execute(f"PRAGMA {name}").fetchone()[0]
               for name in ("journal_mode", "cache_size", "temp_store", "threads")]  # fmt: skip
    assert pragmas == ["wal", -65536, 2, 0]
    bulk.close()

    live, built = connect(tmp_path / "live.sqlite", True), connect(tmp_path / "bulk.sqlite", True)
    comparison = compare(live, built)
    assert comparison.equal, comparison.differences
    assert comparison.versions == len(records) - 2  # all but the replay and the rejection
    for table in ALL_INDEX_TABLES:
        rows = _rows(live, f"SELECT * FROM {table}")
        assert rows, table
        assert rows == _rows(built, f"SELECT * FROM {table}"), table
    assert _indexes(live) == _indexes(built)
    assert built.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    for store_file in (live, built):  # both kinds of new file take the store's page size
        assert store_file.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    with FhirStore.open(tmp_path / "bulk.sqlite", readonly=True) as store:
        assert {r.id for r in store.search("Patient", [("family", "renamed")]).matches} == {
            f"p{n}" for n in range(0, 12, 2)
        }


def test_an_unfinished_bulk_store_gets_its_indexes_when_opened_to_write(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    FhirStore.open(path, bulk=True).close()  # as if the build stopped before finishing
    with pytest.raises(StoreError, match="fresh file"):
        FhirStore.open(path, bulk=True)  # never without a journal on a file that exists
    with FhirStore.open(path) as store:
        names = {row[1] for row in _indexes(store._conn())}
    assert {"ix_token_value", "versions_inbound", "resources_lu"} <= names


def test_a_store_made_with_other_pages_keeps_them_and_takes_changes(tmp_path: Path) -> None:
    path = tmp_path / "older.sqlite"
    made = sqlite3.connect(path)
    made.execute("PRAGMA page_size = 4096")
    made.execute("VACUUM")  # an empty file of 4 KiB pages, as stores were made before
    made.close()
    records = _log()
    with FhirStore.open(path) as store:
        store.applier().apply(records)
        assert store.read("Patient", "p0") is not None
    assert connect(path, True).execute("PRAGMA page_size").fetchone()[0] == 4096


def _index_rows(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: _rows(conn, f"SELECT * FROM {t}") for t in ALL_INDEX_TABLES}


def test_an_update_rewrites_only_the_index_rows_that_changed(tmp_path: Path) -> None:
    first = samples.patient("a", family="Before", mrn="M1")
    second = {**first, "name": [{**first["name"][0], "family": "After"}]}
    store = FhirStore.open(tmp_path / "s.sqlite")
    log = Offsets()
    store.applier().apply(log.records([changed(first)]))
    conn = store._conn()
    old_rows = _index_rows(conn)
    before = conn.total_changes
    store.applier().apply(log.records([changed(second, 2)]))
    written = conn.total_changes - before

    fresh = FhirStore.open(tmp_path / "fresh.sqlite")  # version 2 alone, for the rows it has
    fresh.applier().apply(Offsets().records([changed(second, 2)]))
    new_rows = _index_rows(conn)
    assert new_rows == _index_rows(fresh._conn())
    differing = sum(len(set(old_rows[t]) ^ set(new_rows[t])) for t in ALL_INDEX_TABLES)
    total = sum(len(rows) for rows in new_rows.values())
    assert 0 < differing < total / 2
    # the version row, the resource row, the offset row, and the index rows that differ
    assert written == 3 + differing, (written, differing, total)
    store.close()
    fresh.close()


def test_a_bulk_build_whose_index_process_died_fails(tmp_path: Path) -> None:
    records = _log()
    bulk = FhirStore.open(tmp_path / "bulk.sqlite", bulk=True, index_processes=1)
    applier = bulk.applier()
    applier.apply(records[:10])
    processes = bulk._index_processes
    assert processes is not None
    victim = processes._processes[0].popen
    victim.kill()
    victim.wait()
    with pytest.raises(StoreError, match="index process"):
        applier.apply(records[10:])  # or, had the pipe taken it, finishing
        bulk.finish_bulk()
    bulk.close()
    assert not Path(f"{tmp_path / 'bulk.sqlite'}-turns").exists()
