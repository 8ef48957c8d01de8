"""`carelog lake as-of`: the version of each table at a position, as text and as JSON; and
as-of on a table whose oldest log files Delta has dropped (tables written without a broker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from projections.lake.as_of import AsOfError, versions_at
from projections.lake.changes import Batch, Change
from projections.lake.sink import LakeSink
from projections.lake.tables import Lake
from projections.lake.views import SHIPPED_VIEWS, load_views
from streams.settings import Settings
from streams.settings.lake import LakeSettings
from streams.topics import FHIR_CHANGES
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import change


def write_lake(root: Path) -> None:
    """A lake written in three batches of two Patients each (offsets 0-1, 2-3, 4-5)."""
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name == "patient"]
    sink = LakeSink(Settings(environment="test", lake=LakeSettings(uri=str(root))), views=views)
    for start in (0, 2, 4):
        events = [change(fx.patient(f"p{i}")) for i in (start, start + 1)]
        changes = [Change.of(e, FHIR_CHANGES, 0, start + i) for i, e in enumerate(events)]
        sink.write_batch(Batch(changes, {(FHIR_CHANGES, 0): start + 1}))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("as-of-command") / "lake"
    write_lake(root)
    return root


def as_of(lake: Path, *args: str) -> subprocess.CompletedProcess[str]:
    carelog = str(Path(sys.executable).with_name("carelog"))
    env = {**os.environ, "CARELOG_LAKE_URI": str(lake)}
    return subprocess.run(
        [carelog, "lake", "as-of", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_json_names_the_version_of_each_table_at_a_batch_end(lake: Path) -> None:
    done = as_of(lake, "--position", "0:3", "--json")
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    # version 0 created the table, each batch committed one version
    assert found["versions"] == {"bronze/resource_changes": 2, "silver/patient": 2}
    assert found["position"] == {"0": 3}
    assert found["exact"] is True


def test_text_for_the_latest_position(lake: Path) -> None:
    done = as_of(lake)
    assert done.returncode == 0, done.stderr
    assert "as of carelog.fhir.changes 0:5 (asked: latest)" in done.stdout
    assert f"{lake}/silver/patient" in done.stdout and "version 3" in done.stdout


def test_a_position_inside_a_batch_exits_1_showing_the_batch_end_before_it(lake: Path) -> None:
    done = as_of(lake, "--position", "0:2")
    assert done.returncode == 1
    assert "as of carelog.fhir.changes 0:1 (asked: 0:2)" in done.stdout
    assert "no batch ended at the position asked" in done.stdout
    assert "not exact" not in done.stdout  # at the batch end before it, every table is


def test_as_of_starts_from_the_oldest_version_kept(tmp_path: Path) -> None:
    root = tmp_path / "lake"
    write_lake(root)
    names = ["bronze/resource_changes", "silver/patient"]
    for name in names:  # a checkpoint at version 2, then the log before it dropped
        DeltaTable(str(root / name), version=2).create_checkpoint()
        for old in ("00000000000000000000.json", "00000000000000000001.json"):
            (root / name / "_delta_log" / old).unlink()
    lake = Lake(str(root))
    assert versions_at({0: 5}, lake, names) == {n: 3 for n in names}
    assert versions_at({0: 3}, lake, names) == {n: 2 for n in names}
    with pytest.raises(AsOfError, match="keeps nothing as early as 0:1"):
        versions_at({0: 1}, lake, names)


def test_a_view_added_later_is_exact_at_each_position_it_committed_while_catching_up(
    tmp_path: Path,
) -> None:
    root = tmp_path / "lake"
    write_lake(root)  # bronze and silver/patient at offsets 1, 3 and 5
    settings = Settings(environment="test", lake=LakeSettings(uri=str(root), batch_max_events=1))
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name in ("patient", "patient_identifier")]
    sink = LakeSink(settings, views=views)  # patient_identifier is new: it reads from offset 0
    assert sink.load_positions([0]) == {0: None}
    for offset in range(6):  # read again one at a time: more than it may hold (4 x 1)
        event = change(fx.patient(f"p{offset}"))
        sink.write_batch(
            Batch([Change.of(event, FHIR_CHANGES, 0, offset)], {(FHIR_CHANGES, 0): offset})
        )

    lake = Lake(str(root))
    identifiers = DeltaTable(str(root / "silver/patient_identifier"))
    assert identifiers.to_pyarrow_table().num_rows == 2 * 6
    # Held offsets 0-3 and gave up holding at 4: what it held went in batches of the reader's
    # size (one change), each at its own position, then 5.
    assert identifiers.version() == 6
    names = ["bronze/resource_changes", "silver/patient", "silver/patient_identifier"]
    assert versions_at({0: 5}, lake, names)["silver/patient_identifier"] == identifiers.version()
    assert versions_at({0: 3}, lake, names) == {names[0]: 2, names[1]: 2, names[2]: 4}


def test_a_table_behind_at_its_latest_version_is_exact_only_without_changes_of_its_own(
    tmp_path: Path,
) -> None:
    root = tmp_path / "lake"
    write_lake(root)  # bronze and silver/patient at offsets 1, 3 and 5
    views = [v for v in load_views(SHIPPED_VIEWS) if v.name == "patient"]
    sink = LakeSink(Settings(environment="test", lake=LakeSettings(uri=str(root))), views=views)
    sink.load_positions([0])
    sink.targets[1].last_commit = time.monotonic()  # as if it committed just now
    # Offsets 6-7: Observations only; silver/patient has nothing to commit and waits.
    observations = [change(fx.observation(f"o{i}", "p0", value=1.0)) for i in (6, 7)]
    changes = [Change.of(e, FHIR_CHANGES, 0, i) for i, e in zip((6, 7), observations, strict=True)]
    sink.write_batch(Batch(changes, {(FHIR_CHANGES, 0): 7}))
    lake = Lake(str(root))
    names = ["bronze/resource_changes", "silver/patient"]
    assert versions_at({0: 7}, lake, names) == {"bronze/resource_changes": 4, "silver/patient": 3}

    # Offsets 8-9: a Patient whose silver commit has not landed (failed, or still running).
    def fail(*_: object) -> int:
        raise OSError("not landed")

    sink.targets[1].write = fail
    patients = [Change.of(change(fx.patient(f"p{i}")), FHIR_CHANGES, 0, i) for i in (8, 9)]
    with pytest.raises(OSError):
        sink.write_batch(Batch(patients, {(FHIR_CHANGES, 0): 9}))
    with pytest.raises(AsOfError, match="silver/patient cannot be shown exactly at 0:9"):
        versions_at({0: 9}, lake, names)
    assert versions_at({0: 7}, lake, names) == {"bronze/resource_changes": 4, "silver/patient": 3}
    with pytest.raises(AsOfError, match="not reached the position yet"):
        versions_at({0: 12}, lake, names)
