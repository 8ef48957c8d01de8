"""Silver writes in process (no broker): one commit per batch, merging only what can match."""

from __future__ import annotations

from pathlib import Path

from deltalake import CommitProperties, DeltaTable, write_deltalake

from projections.lake import silver
from projections.lake.changes import Change
from projections.lake.views import SHIPPED_VIEWS, View, load_views
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import change


def patient_view() -> View:
    return next(v for v in load_views(SHIPPED_VIEWS) if v.name == "patient")


def changes(*versions: tuple[str, int], start: int = 0) -> list[Change]:
    events = [change(fx.patient(rid), version) for rid, version in versions]
    return [Change.of(e, "t", 0, start + i) for i, e in enumerate(events)]


def test_a_merge_matches_only_the_resources_that_can_have_rows(tmp_path: Path) -> None:
    """A version 1 cannot meet rows of its resource: only updates and deletes get a marker row,
    so the merge joins the table against the few updated ids, not the whole batch."""
    view = patient_view()
    write_deltalake(tmp_path, view.schema.empty_table())
    table = DeltaTable(str(tmp_path))
    first = silver.flatten(view, changes(("a", 1), ("b", 1)))
    silver.write(table, view.schema, first, CommitProperties())
    table.update_incremental()

    new_ids = [f"n{i}" for i in range(20)]
    batch = silver.flatten(view, changes(("a", 2), *((rid, 1) for rid in new_ids), start=2))
    metrics = silver.write(table, view.schema, batch, CommitProperties())
    table.update_incremental()

    assert batch.needs_merge
    assert metrics["num_source_rows"] == 1 + 21  # one marker (a) and the 21 new rows
    assert metrics["num_target_rows_deleted"] == 1
    rows = table.to_pyarrow_table().to_pylist()
    assert sorted((r["id"], r["_version"]) for r in rows) == sorted(
        [("a", 2), ("b", 1), *((rid, 1) for rid in new_ids)]
    )
