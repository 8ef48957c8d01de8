"""The lake's tables as of a log position, against the real broker, across a crash.

One sink writes a topic of Patient changes in small batches and dies between the bronze and
the silver/patient commit of one batch (the silver write raises); a second sink, with
smaller batches, finishes. Then every position at which the bronze table committed must open
bronze and silver at versions holding exactly the changes up to it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from itertools import pairwise

import duckdb
import polars as pl
import pytest
from deltalake import DeltaTable

from projections.lake.as_of import AsOfError, Position, open_as_of, resolve, versions_at
from projections.lake.changes import Change
from projections.lake.offsets import Positions, table_positions
from projections.lake.sink import LakeSink
from projections.lake.tables import BRONZE, Lake
from projections.lake.views import SHIPPED_VIEWS, load_views
from schemas.events import ResourceChanged
from streams.admin import apply_catalogue
from streams.producer import Delivered, EventProducer
from streams.settings import Settings
from streams.topics import Topic
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import append, change

pytestmark = pytest.mark.kafka

PATIENTS = 90
PATIENT = "silver/patient"
TABLES = [BRONZE, PATIENT, "silver/patient_identifier"]


@dataclass(frozen=True)
class Written:
    lake: Lake
    topic: str
    changes: list[tuple[ResourceChanged, Delivered]]
    crashed_at: Position  # bronze's position when silver/patient's commit failed


def _positions(table: DeltaTable, topic: str) -> Position:
    return {p: off for (_, p), off in table_positions(table, topic, range(3)).items()}


def _sink(settings: Settings, topic: str, batch: int) -> LakeSink:
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name in ("patient", "patient_identifier")]
    tuned = settings.amended(
        lake={
            "group_id": f"test-as-of-{uuid.uuid4()}",
            "batch_max_events": batch,
            "batch_max_seconds": 0.2,
            # Compactions among the commits: each is a version of its own, with no data
            # change and the positions kept, that every as-of must see through.
            "compact_every_commits": 2,
        }
    )
    return LakeSink(tuned, topic=topic, views=views)


@pytest.fixture(scope="module")
def written(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Written:
    topic = f"test.lake.as-of.{uuid.uuid4().hex[:8]}"
    apply_catalogue(
        [Topic(topic, "ResourceType/id", "ResourceChanged", 3, 1, 1, {"retention.ms": "-1"})],
        kafka_settings,
    )
    prefix = uuid.uuid4().hex[:8]
    ids = [f"{prefix}-{i}" for i in range(PATIENTS)]
    events = [change(fx.patient(i, family="v1")) for i in ids]
    events += [change(fx.patient(i, family="v2"), 2) for i in ids[::2]]
    events += [change(None, 3, rtype="Patient", rid=i) for i in ids[::6]]
    with EventProducer(kafka_settings) as producer:
        delivered = append(producer, events, topic)

    lake_dir = tmp_path_factory.mktemp("as-of") / "lake"
    settings = kafka_settings.amended(lake={"uri": str(lake_dir)})
    first = _sink(settings, topic, batch=40)
    patient = next(t for t in first.targets if t.name == PATIENT)
    write, calls = patient.write, []

    def dies_on_the_third(table: DeltaTable, changes: list[Change], at: Positions) -> int:
        calls.append(at)
        if len(calls) == 3:
            raise OSError("killed between the bronze and the silver commit")
        return write(table, changes, at)

    patient.write = dies_on_the_third
    with pytest.raises(OSError, match="killed between"):
        first.run(caught_up=True)
    lake = first.lake
    crashed_at = _positions(DeltaTable(lake.uri_of(BRONZE)), topic)
    assert crashed_at != _positions(DeltaTable(lake.uri_of(PATIENT)), topic), "no crash to test"

    # Batches smaller than the gap: the restart holds what it reads again until it reaches
    # bronze's position, or silver/patient would commit between bronze's positions.
    second = _sink(settings, topic, batch=15)
    stats = second.run(caught_up=True)
    assert stats.changes > 0
    # Which table compacts depends on how the batches fell (bronze leads after the crash).
    assert stats.compactions, "no compaction among the versions to open as of"
    return Written(lake, topic, list(zip(events, delivered, strict=True)), crashed_at)


def _bronze_positions(w: Written) -> list[Position]:
    """The position of every bronze version, oldest first."""
    current = DeltaTable(w.lake.uri_of(BRONZE)).version()
    return [
        _positions(DeltaTable(w.lake.uri_of(BRONZE), version=v), w.topic)
        for v in range(1, current + 1)
    ]


def _up_to(w: Written, position: Position) -> list[tuple[ResourceChanged, Delivered]]:
    return [(e, d) for e, d in w.changes if d.offset <= position.get(d.partition, -1)]


def _families(changes: list[tuple[ResourceChanged, Delivered]]) -> dict[str, str]:
    """silver/patient's rows after these changes: {id: family} of resources not deleted."""
    state: dict[str, str | None] = {}
    for event, _ in changes:  # per resource the log keeps order (one key, one partition)
        state[event.resource_id] = (
            None if event.resource is None else ("v2" if '"v2"' in event.resource else "v1")
        )
    return {rid: family for rid, family in state.items() if family is not None}


def test_every_bronze_position_opens_bronze_and_silver_holding_exactly_the_changes_up_to_it(
    written: Written,
) -> None:
    boundaries = _bronze_positions(written)
    assert written.crashed_at in boundaries
    assert len(boundaries) >= 5
    for position in boundaries:
        found = resolve(position, written.lake, TABLES, written.topic)
        assert found.complete and found.position == position
        assert all(t.exact for t in found.tables), (position, found.tables)
        expected = _up_to(written, position)

        bronze = DeltaTable(written.lake.uri_of(BRONZE), version=found.versions[BRONZE])
        rows = bronze.to_pyarrow_table(columns=["kafka_partition", "kafka_offset"]).to_pylist()
        assert sorted((r["kafka_partition"], r["kafka_offset"]) for r in rows) == sorted(
            (d.partition, d.offset) for _, d in expected
        )
        patient = open_as_of(PATIENT, position, written.lake, written.topic)
        assert patient.version() == found.versions[PATIENT]
        rows = patient.to_pyarrow_table(columns=["id", "family"]).to_pylist()
        assert {r["id"]: r["family"] for r in rows} == _families(expected)


def test_the_latest_position_is_the_whole_topic(written: Written) -> None:
    versions = versions_at(None, written.lake, TABLES, written.topic)
    assert versions == {name: DeltaTable(written.lake.uri_of(name)).version() for name in TABLES}
    patient = DeltaTable(written.lake.uri_of(PATIENT), version=versions[PATIENT])
    rows = patient.to_pyarrow_table(columns=["id", "family"]).to_pylist()
    assert {r["id"]: r["family"] for r in rows} == _families(written.changes)


def test_a_position_inside_a_batch_is_refused_naming_the_batch_end_before_it(
    written: Written,
) -> None:
    boundaries = _bronze_positions(written)
    before, after, partition = next(
        (a, b, p)
        for a, b in pairwise(boundaries)
        for p in b
        if b[p] - a.get(p, -1) >= 2  # the later batch read two or more from partition p
    )
    inside = {**after, partition: after[partition] - 1}
    found = resolve(inside, written.lake, TABLES, written.topic)
    assert not found.complete
    assert found.position == before
    assert all(t.exact for t in found.tables)
    with pytest.raises(AsOfError, match="no batch of the sink ended"):
        versions_at(inside, written.lake, TABLES, written.topic)


def test_a_position_before_anything_was_written_opens_empty_tables(written: Written) -> None:
    found = resolve({0: -1, 1: -1, 2: -1}, written.lake, TABLES, written.topic)
    assert found.complete
    for name, version in found.versions.items():
        assert (
            DeltaTable(written.lake.uri_of(name), version=version).to_pyarrow_table().num_rows == 0
        )


def test_parse_position() -> None:
    from projections.lake.as_of import parse_position

    assert parse_position("0:120, 1:98") == {0: 120, 1: 98}
    assert parse_position("latest") is None
    with pytest.raises(AsOfError, match="partition:offset"):
        parse_position("0=120")


def test_polars_and_duckdb_read_the_versions_as_the_readme_shows(written: Written) -> None:
    position = _bronze_positions(written)[len(_bronze_positions(written)) // 2]
    versions = versions_at(position, written.lake, TABLES, written.topic)
    expected = _up_to(written, position)

    patients = pl.read_delta(written.lake.uri_of(PATIENT), version=versions[PATIENT])
    assert dict(zip(patients["id"], patients["family"], strict=True)) == _families(expected)

    files = DeltaTable(written.lake.uri_of(BRONZE), version=versions[BRONZE]).file_uris()
    counted = duckdb.sql(
        "SELECT resource_type, count(*) FROM read_parquet($files, hive_partitioning = true) "
        "GROUP BY resource_type",
        params={"files": files},
    ).fetchall()
    assert counted == [("Patient", len(expected))]
