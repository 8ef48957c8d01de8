"""A batch's commits to the lake's tables run side by side, and a failed one loses no other."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable

from projections.lake.changes import Batch, Change
from projections.lake.offsets import Positions, table_positions
from projections.lake.sink import LakeSink
from projections.lake.views import SHIPPED_VIEWS, load_views
from streams.settings import Settings
from streams.settings.lake import LakeSettings
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import change

PAUSE = 0.4
Writer = Callable[[DeltaTable, list[Change], Positions], int]


def _sink(tmp_path: Path) -> LakeSink:
    settings = Settings(environment="test", lake=LakeSettings(uri=str(tmp_path / "lake")))
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name in ("patient", "observation")]
    return LakeSink(settings, topic="t", views=views)


def _batch() -> Batch:
    events = [change(fx.patient("p1")), change(fx.observation("o1", "p1", value=1.0))]
    return Batch([Change.of(e, "t", 0, i) for i, e in enumerate(events)], {("t", 0): 1})


def test_the_tables_of_a_batch_are_committed_side_by_side(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    running, most = 0, 0
    lock = threading.Lock()

    def slowed(write: Writer) -> Writer:
        def slow(table: DeltaTable, changes: list[Change], at: Positions) -> int:
            nonlocal running, most
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(PAUSE)  # as a Delta commit waits on storage, without the GIL
            with lock:
                running -= 1
            return write(table, changes, at)

        return slow

    for target in sink.targets:
        target.write = slowed(target.write)
    sink.write_batch(_batch())
    assert most >= 2
    assert sink.stats.rows == {
        "bronze/resource_changes": 2,
        "silver/patient": 1,
        "silver/observation": 1,
    }
    assert all(t.positions == {("t", 0): 1} for t in sink.targets)


def test_a_failed_commit_is_raised_after_the_other_tables_committed(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    broken = sink.targets[1]

    def fail(table: DeltaTable, changes: list[Change], at: Positions) -> int:
        raise OSError("storage went away")

    broken.write = fail
    with pytest.raises(OSError, match="storage went away"):
        sink.write_batch(_batch())
    for target in sink.targets:
        expected = {} if target is broken else {("t", 0): 1}
        assert target.positions == expected, target.name


def test_the_sink_compacts_each_table_every_so_many_commits(tmp_path: Path) -> None:
    """A micro-batch adds a file per table per commit, and a commit costs in proportion to a
    table's files: the sink compacts every compact_every_commits commits of a table. The
    compaction changes no row and no position."""
    settings = Settings(
        environment="test",
        lake=LakeSettings(uri=str(tmp_path / "lake"), compact_every_commits=3),
    )
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name == "patient"]
    sink = LakeSink(settings, topic="t", views=views)
    for n in range(7):
        event = change(fx.patient(f"p{n}", family=f"Family{n}"))
        sink.write_batch(Batch([Change.of(event, "t", 0, n)], {("t", 0): n}))
    assert sink.stats.compactions == {"bronze/resource_changes": 2, "silver/patient": 2}
    for target in sink.targets:
        table = DeltaTable(str(tmp_path / "lake" / target.name))
        assert len(table.file_uris()) <= 3, target.name  # 7 commits' files, compacted
        assert table.to_pyarrow_table().num_rows == 7
        assert table_positions(table, "t", [0]) == {("t", 0): 6}, target.name
