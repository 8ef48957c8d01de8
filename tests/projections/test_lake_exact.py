"""Every batch end bronze holds opens the silver tables exactly, also where a silver table
made no row change in a batch (a merge without effect) or had no change in a partition."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest
from deltalake import DeltaTable

from projections.lake.as_of import resolve
from projections.lake.changes import Batch, Change
from projections.lake.maintenance import positions
from projections.lake.offsets import table_positions
from projections.lake.sink import LakeSink
from projections.lake.tables import BRONZE, Lake
from projections.lake.views import SHIPPED_VIEWS, load_views
from schemas.events import ResourceChanged
from streams.settings import Settings
from streams.settings.lake import LakeSettings
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import change

TOPIC = "t"
PATIENT_TABLES = ["silver/patient", "silver/patient_identifier"]
RESOURCES = {"silver/patient": "Patient", "silver/patient_identifier": "Patient"}


def _sink(lake: Path) -> LakeSink:
    settings = Settings(environment="test", lake=LakeSettings(uri=str(lake)))
    views = [
        v
        for v in load_views(SHIPPED_VIEWS)
        if v.name in ("patient", "patient_identifier", "observation")
    ]
    return LakeSink(settings, topic=TOPIC, views=views)


def _write(lake: Path, batches: list[list[tuple[int, ResourceChanged]]]) -> None:
    """Write each batch of (partition, event), offsets counted per partition."""
    sink = _sink(lake)
    sink.load_positions([0, 1])
    next_offset = {0: 0, 1: 0}
    for events in batches:
        changes = []
        for partition, event in events:
            changes.append(Change.of(event, TOPIC, partition, next_offset[partition]))
            next_offset[partition] += 1
        sink.write_batch(Batch(changes, {(TOPIC, c.partition): c.offset for c in changes}))


def _assert_every_bronze_position_is_exact(lake: Path) -> None:
    bronze = lake / BRONZE
    for version in range(1, DeltaTable(str(bronze)).version() + 1):
        at = positions(DeltaTable(str(bronze), version=version), TOPIC)
        found = resolve(at, Lake(str(lake)), [BRONZE, *PATIENT_TABLES], TOPIC, RESOURCES)
        assert found.complete and all(t.exact for t in found.tables), (at, found.tables)


def _without_identifiers(pid: str, family: str) -> dict[str, object]:
    patient = fx.patient(pid, family=family)
    del patient["identifier"]
    return patient


def test_a_batch_making_no_row_change_still_records_its_position(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    # patient_identifier has no row for "a": its new version merges nothing, in the last batch.
    _write(
        lake,
        [
            [(0, change(_without_identifiers("a", "v1"))), (0, change(fx.patient("b")))],
            [(0, change(fx.patient("b", family="v2"), 2))],
            [(0, change(_without_identifiers("a", "v2"), 2))],
        ],
    )
    bronze = table_positions(DeltaTable(str(lake / BRONZE)), TOPIC, [0])
    for name in PATIENT_TABLES:
        assert table_positions(DeltaTable(str(lake / name)), TOPIC, [0]) == bronze, name
    _assert_every_bronze_position_is_exact(lake)


def test_a_batch_without_the_tables_resource_in_one_partition_keeps_them_exact(
    tmp_path: Path,
) -> None:
    lake = tmp_path / "lake"
    # Patients on partition 0, Observations on 1: the patient tables skip the middle batch,
    # then commit past it on partition 0 only.
    _write(
        lake,
        [
            [(0, change(fx.patient("a"))), (1, change(fx.observation("o1", "a", value=1.0)))],
            [(1, change(fx.observation("o2", "a", value=2.0)))],
            [(0, change(fx.patient("a", family="v2"), 2))],
        ],
    )
    _assert_every_bronze_position_is_exact(lake)


def test_a_table_a_kill_left_behind_catches_up_exactly_while_other_partitions_run_ahead(
    tmp_path: Path,
) -> None:
    """A restart re-reads the partitions a crash left patient_identifier behind in, while
    the other partitions deliver new changes faster than that: more changes than the sink
    holds for a catch-up arrive before the lagging partition reaches the lead. Only the gap
    below the lead counts, so the table still commits at exactly the lead first."""
    lake = tmp_path / "lake"
    settings = Settings(environment="test", lake=LakeSettings(uri=str(lake), batch_max_events=2))
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name in ("patient", "patient_identifier")]

    def at(partition: int, offset: int, pid: str) -> Change:
        return Change.of(change(fx.patient(pid)), TOPIC, partition, offset)

    def batch(*changes: Change) -> Batch:
        return Batch(list(changes), {(TOPIC, c.partition): c.offset for c in changes})

    killed = LakeSink(settings, topic=TOPIC, views=views)
    killed.load_positions([0, 1])
    killed.write_batch(batch(at(0, 0, "a"), at(0, 1, "b"), at(1, 0, "c")))
    identifiers = next(t for t in killed.targets if t.name == "silver/patient_identifier")

    def crash(*_: object) -> int:
        raise RuntimeError("SIGKILL before this commit")

    identifiers.write = crash
    with pytest.raises(RuntimeError, match="SIGKILL"):
        killed.write_batch(batch(at(0, 2, "d"), at(1, 1, "e")))
    lead = {0: 2, 1: 1}
    assert positions(DeltaTable(str(lake / BRONZE)), TOPIC) == lead
    assert positions(DeltaTable(str(lake / "silver/patient_identifier")), TOPIC) == {0: 1, 1: 0}

    restarted = LakeSink(settings, topic=TOPIC, views=views)
    assert restarted.load_positions([0, 1]) == {0: 2, 1: 1}  # where reading resumes
    restarted_at = DeltaTable(str(lake / BRONZE)).version()
    # Partition 1 again, then ten new changes on it; partition 0's re-read comes later.
    restarted.write_batch(batch(at(1, 1, "e"), *(at(1, n, f"n{n}") for n in range(2, 12))))
    restarted.write_batch(batch(at(0, 2, "d"), at(0, 3, "f")))

    # What was held goes in batches of the reader's size, not at once: a kill between two
    # tables' commits leaves one no more than a batch behind, a gap the next restart holds.
    bronze_rows = [
        DeltaTable(str(lake / BRONZE), version=v).to_pyarrow_table(columns=["resource_id"])
        for v in range(restarted_at, DeltaTable(str(lake / BRONZE)).version() + 1)
    ]
    added = [b.num_rows - a.num_rows for a, b in pairwise(bronze_rows)]
    assert sum(added) == 11 and max(added) <= 2, added

    identifiers_positions = [
        positions(DeltaTable(str(lake / "silver/patient_identifier"), version=v), TOPIC)
        for v in range(DeltaTable(str(lake / "silver/patient_identifier")).version() + 1)
    ]
    assert lead in identifiers_positions
    _assert_every_bronze_position_is_exact(lake)
