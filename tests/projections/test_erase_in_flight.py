"""An erasure that comes while a projection holds a batch it opened before the shred: the
batch must not put back what `carelog erase` deleted (the FHIR store checks under its write
lock; the lake sink before and after each table's commit). No broker: the keys are in
memory, and the erasure's steps (shred, delete) are run where the race puts them."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from projections.fhir_store import FhirStore
from projections.fhir_store.apply import Applier
from projections.fhir_store.erase import erase_from_store
from projections.lake.changes import Batch, Change
from projections.lake.purge import purge_resources
from projections.lake.sink import LakeSink
from projections.lake.views import SHIPPED_VIEWS, load_views
from streams.privacy.envelope import keystore
from streams.settings import Settings
from streams.settings.lake import LakeSettings
from tests.projections import fhir_samples as fx
from tests.projections.fhir_store_support import Offsets, changed
from tests.projections.lake_support import change

ERASED = {("Patient", "gone"), ("Observation", "gone-obs")}


def shred_patient(pid: str) -> None:
    store = keystore()
    assert store is not None
    assert store.shred(store.key_ids(f"patient:{pid}"))


class _ErasureBeforeTheLock(sqlite3.Connection):
    """A store connection that runs `before_lock` once, right before a batch takes the write
    lock (the applier's BEGIN IMMEDIATE), where an erasure may come."""

    before_lock: Callable[[], None] | None = None

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "BEGIN IMMEDIATE" and self.before_lock is not None:
            run, self.before_lock = self.before_lock, None
            run()
        return super().execute(sql, *args)


def test_a_store_batch_opened_before_an_erasure_does_not_bring_the_patient_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite"
    store = FhirStore.open(path)
    log = Offsets()
    store.applier().apply(list(log.records([
        changed(fx.patient("gone", "Forgetme")), changed(fx.patient("kept", "Keepme")),
    ])))  # fmt: skip
    later = list(log.records([
        changed(fx.patient("gone", "Forgetmenot"), 2),
        changed(fx.observation("gone-obs", "gone")),
        changed(fx.patient("kept", "Keepmetoo"), 2),
    ]))  # fmt: skip

    def erasure_comes() -> None:
        shred_patient("gone")
        conn = sqlite3.connect(path, isolation_level=None)
        erase_from_store(conn, ERASED, [])
        conn.close()

    # The batch is opened (its events decoded with the patient's key) and folded, then the
    # erasure runs just before the batch takes the write lock.
    conn = _ErasureBeforeTheLock(path, isolation_level=None)
    conn.before_lock = erasure_comes
    applied = Applier(conn).apply(later)
    assert conn.before_lock is None, "the erasure did not come"
    conn.close()

    assert store.read("Patient", "gone") is None
    assert store.read("Observation", "gone-obs") is None
    assert store.history("Patient", "gone")[1] == 0
    assert store.search("Patient", [("family", "forgetme")]).matches == []
    kept = store.read("Patient", "kept")
    assert kept is not None and kept.version == 2
    assert applied.versions == 1  # the kept patient's; the erased ones stayed sealed
    assert store.applied_offsets()[("carelog.fhir.changes", 0)] == 4  # the batch moved on
    raw = path.read_bytes() + Path(f"{path}-wal").read_bytes()
    assert b"Forgetme" not in raw


def _files_holding(root: Path, text: str, logs: bool = True) -> list[Path]:
    """Data files (and with `logs`, the tables' logs and checkpoints) with `text` in them."""
    return [p for p in root.rglob("*") if p.is_file() and (
        text in str(pq.read_table(p).to_pylist())
        if p.suffix == ".parquet" and "_delta_log" not in p.parts
        else logs and text.encode() in p.read_bytes()
    )]  # fmt: skip


def _lake_sink(lake: Path) -> LakeSink:
    settings = Settings(environment="test", lake=LakeSettings(uri=str(lake)))
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name in ("patient", "observation")]
    return LakeSink(settings, topic="t", views=views)


def _erasure(lake: Path) -> None:
    """The erasure's steps in the lake, with tables of its own (it is another process)."""
    shred_patient("gone")
    erased = _lake_sink(lake)
    purge_resources(erased.targets, ERASED, erased.deidentifier)


def _sink(tmp_path: Path) -> tuple[LakeSink, Path, Callable[[list[object]], Batch]]:
    lake = tmp_path / "lake"
    sink = _lake_sink(lake)
    offset = 0

    def batch(events: list[object]) -> Batch:
        nonlocal offset
        changes = [Change.of(e, "t", 0, offset + i) for i, e in enumerate(events)]  # type: ignore[arg-type]
        offset += len(changes)
        return Batch(changes, {("t", 0): offset - 1})

    sink.write_batch(
        batch([change(fx.patient("gone", "Forgetme")), change(fx.patient("kept", "Keepme"))])
    )
    return sink, lake, batch


def _second_batch(batch: Callable[[list[object]], Batch]) -> Batch:
    return batch([
        change(fx.patient("gone", "Forgetmenot"), 2), change(fx.observation("gone-obs", "gone")),
        change(fx.patient("kept", "Keepmetoo"), 2),
    ])  # fmt: skip


def _assert_erased(sink: LakeSink, lake: Path) -> None:
    assert _files_holding(lake, "Forgetme") == []
    assert _files_holding(lake, "gone-obs", logs=False) == []  # ids are in clear by design
    bronze = DeltaTable(str(lake / "bronze/resource_changes")).to_pyarrow_table().to_pylist()
    assert {r["resource_id"] for r in bronze} == {"kept"}
    assert all(t.positions == {("t", 0): 4} for t in sink.targets)  # every table moved on


def test_a_lake_batch_read_before_an_erasure_does_not_write_the_patient_back(
    tmp_path: Path,
) -> None:
    sink, lake, batch = _sink(tmp_path)
    second = _second_batch(batch)  # read and opened
    _erasure(lake)  # then the erasure: shred, wait, delete
    sink.write_batch(second)
    _assert_erased(sink, lake)
    patients = DeltaTable(str(lake / "silver/patient")).to_pyarrow_table().to_pylist()
    assert [(r["_resource_id"], r["_version"]) for r in patients] == [("kept", 2)]


@pytest.mark.parametrize("table", ["bronze/resource_changes", "silver/patient"])
def test_an_erasure_that_deletes_while_a_table_commits_is_followed_by_the_sink(
    tmp_path: Path, table: str
) -> None:
    """The erasure's delete lands between the sink's check and its commit: the commit brings
    the rows back, and the sink, seeing the shred after it, deletes them itself."""
    sink, lake, batch = _sink(tmp_path)
    second = _second_batch(batch)
    target = next(t for t in sink.targets if t.name == table)
    write = target.write

    def erasure_comes(*args: Any) -> int:
        target.write = write  # once
        _erasure(lake)
        return write(*args)

    target.write = erasure_comes
    sink.write_batch(second)
    _assert_erased(sink, lake)
