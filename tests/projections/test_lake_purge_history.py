"""Erasure in the lake reaches the table's history too: rows an update (a silver merge) or a
compaction left in files that an older version still references are removed from storage
with the rest, so time travel cannot bring the person back (projections/lake/purge.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from projections.lake.changes import Batch, Change
from projections.lake.purge import purge_resources
from projections.lake.sink import LakeSink
from projections.lake.tables import Lake
from projections.lake.views import SHIPPED_VIEWS, load_views
from streams.settings import Settings
from streams.settings.lake import LakeSettings
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import change


def _files_holding(root: Path, text: str) -> list[Path]:
    """Files anywhere under `root` (referenced or not) with `text` in a value: data files,
    and the tables' logs and checkpoints (file statistics hold column values)."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        if path.suffix == ".parquet" and "_delta_log" not in path.parts:
            held = any(text in str(row) for row in pq.read_table(path).to_pylist())
        else:  # a commit (JSON) or checkpoint: its statistics are plain in the bytes
            held = text.encode() in path.read_bytes()
        if held:
            found.append(path)
    return found


def test_an_erased_patients_rows_leave_every_file_older_versions_read(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    settings = Settings(environment="test", lake=LakeSettings(uri=str(lake)))
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name == "patient"]
    sink = LakeSink(settings, topic="t", views=views)
    offset = 0

    def write(*events: object) -> None:
        nonlocal offset
        changes = [Change.of(e, "t", 0, offset + i) for i, e in enumerate(events)]  # type: ignore[arg-type]
        offset += len(changes)
        sink.write_batch(Batch(changes, {("t", 0): offset - 1}))

    write(change(fx.patient("erased", family="Forgetme")), change(fx.patient("kept", "Keepme")))
    write(change(fx.patient("erased", family="Forgetmenot"), 2))  # a merge rewrites a file
    for target in sink.targets:  # and `carelog lake optimize` compacts (no vacuum yet)
        target.table.optimize.compact()
        target.table.update_incremental()
    assert _files_holding(lake, "Forgetme")  # in the current files and in older ones

    deleted, _ = purge_resources(sink.targets, {("Patient", "erased")}, None)
    assert deleted == {"bronze/resource_changes": 2, "silver/patient": 1}
    assert _files_holding(lake, "Forgetme") == []
    assert _files_holding(lake, "Keepme")
    for name in ("bronze/resource_changes", "silver/patient"):
        current = DeltaTable(str(lake / name)).to_pyarrow_table().to_pylist()
        assert any("Keepme" in str(r) for r in current) and not any(
            "Forgetme" in str(r) for r in current
        )


def test_a_table_made_before_statistics_left_content_out_is_scrubbed_by_the_purge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delta keeps min/max column values per data file in the table's log (a family name of
    a silver table). Tables are now made with statistics of system columns only; one made
    before holds content in its log and checkpoints, and the purge takes the removed files'
    statistics out of them."""
    lake = tmp_path / "lake"
    settings = Settings(environment="test", lake=LakeSettings(uri=str(lake)))
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name == "patient"]

    def made_before(
        self: Lake,
        name: str,
        schema: pa.Schema,
        stats: object,
        partition_by: list[str] | None = None,
    ) -> DeltaTable:
        return self.open(name) or DeltaTable.create(
            self.uri_of(name), schema, partition_by=partition_by
        )

    with monkeypatch.context() as before:
        before.setattr(Lake, "ensure", made_before)
        old = LakeSink(settings, topic="t", views=views)
        old.write_batch(Batch([
            Change.of(change(fx.patient("erased", family="Forgetme")), "t", 0, 0),  # type: ignore[arg-type]
            Change.of(change(fx.patient("kept", family="Keepme")), "t", 0, 1),  # type: ignore[arg-type]
        ], {("t", 0): 1}))  # fmt: skip
    assert _files_holding(lake / "silver/patient/_delta_log", "Forgetme")  # in the log

    sink = LakeSink(settings, topic="t", views=views)  # made now: it restricts from here on
    sink.write_batch(Batch([
        Change.of(change(fx.patient("other", family="Othername")), "t", 0, 2),  # type: ignore[arg-type]
    ], {("t", 0): 2}))  # fmt: skip
    for target in sink.targets:
        target.table.create_checkpoint()  # it copies the statistics of the live files

    deleted, _ = purge_resources(sink.targets, {("Patient", "erased")}, None)
    assert deleted == {"bronze/resource_changes": 1, "silver/patient": 1}
    assert _files_holding(lake, "Forgetme") == []
    for name in ("bronze/resource_changes", "silver/patient"):  # the log still opens
        rows = DeltaTable(str(lake / name)).to_pyarrow_table().to_pylist()
        assert any("Keepme" in str(r) for r in rows) and any("Othername" in str(r) for r in rows)
        assert not any("Forgetme" in str(r) for r in rows)
