"""Erasure in the lake reaches the table's history too: rows an update (a silver merge) or a
compaction left in files that an older version still references are removed from storage
with the rest, so time travel cannot bring the person back (projections/lake/purge.py)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable

from projections.lake.changes import Batch, Change
from projections.lake.purge import purge_resources
from projections.lake.sink import LakeSink
from projections.lake.views import SHIPPED_VIEWS, load_views
from streams.settings import Settings
from streams.settings.lake import LakeSettings
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import change


def _files_holding(root: Path, text: str) -> list[Path]:
    """Data files anywhere under `root` (referenced or not) with `text` in a value."""
    found = []
    for path in root.rglob("*.parquet"):
        values = pq.read_table(path).to_pylist()
        if any(text in str(row) for row in values):
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
