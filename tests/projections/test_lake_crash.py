"""Exactly once across crashes: `carelog sink` SIGKILLed mid-batch, restarted, several times.

Small batches make a kill land between the bronze commit and the silver commits (or inside
one) most of the time; the test records how often the tables disagreed right after a kill.
At the end every change is in bronze exactly once and silver holds exactly the current state,
and every position bronze committed at opens silver at a version holding exactly the changes
up to it (the tables a kill left behind caught up to exactly bronze's position).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from deltalake import DeltaTable

from projections.lake.as_of import resolve
from projections.lake.maintenance import positions
from projections.lake.tables import Lake
from streams.producer import EventProducer
from streams.settings import Settings
from streams.topics import FHIR_CHANGES
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import append, change, rows_of

pytestmark = pytest.mark.kafka

PATIENTS = 1500

CHECKED_VERSIONS = 25  # bronze versions whose position is opened as of, at most


def start_sink(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A sink in a consumer group of its own, until it has written the log as it was when it
    started: where it resumes is in the lake's Delta commits, and a new group does not wait out
    the session of the member a SIGKILL left behind."""
    carelog = str(Path(sys.executable).with_name("carelog"))
    env = {**env, "CARELOG_LAKE_GROUP_ID": f"crash-{uuid.uuid4().hex[:12]}"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [carelog, "sink", "--until-caught-up"], env=env, stdout=out, stderr=out
        )


def bronze_version(lake: Path) -> int:
    try:
        return DeltaTable(str(lake / "bronze/resource_changes")).version()
    except Exception:
        return -1


def test_sigkill_mid_batch_writes_nothing_twice_and_loses_nothing(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    prefix = uuid.uuid4().hex[:12]
    ids = [f"{prefix}-{i}" for i in range(PATIENTS)]
    deleted = set(ids[::7])
    events = [change(fx.patient(i, family="v1")) for i in ids]
    events += [change(fx.patient(i, family="v2"), 2) for i in ids]
    events += [change(None, 3, rtype="Patient", rid=i) for i in sorted(deleted)]

    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "CARELOG_LAKE_URI": str(lake),
        "CARELOG_KAFKA_BOOTSTRAP": kafka_settings.kafka.bootstrap,
    }
    # The session's earlier tests left their changes on the topic: the lake takes them in
    # first, in full-size batches, so that the kills below land among this test's changes.
    assert start_sink(env, tmp_path / "sink.log").wait(timeout=240) == 0
    with EventProducer(kafka_settings) as producer:
        delivered = append(producer, events)
    env |= {"CARELOG_LAKE_BATCH_MAX_EVENTS": "250", "CARELOG_LAKE_BATCH_MAX_SECONDS": "0.2"}
    rng = random.Random(prefix)
    kills, disagreements = 0, 0
    for _ in range(4):
        sink = start_sink(env, tmp_path / "sink.log")
        started = bronze_version(lake)
        deadline = time.monotonic() + 60
        # Kill soon after the first new commit: a restart catches up in a few batches, and a
        # later kill would often find the whole topic written (fewer than two kills).
        while (
            bronze_version(lake) <= max(started, 0)
            and sink.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.15))
        if sink.poll() is not None:
            break  # it finished the whole topic before the kill
        sink.send_signal(signal.SIGKILL)
        sink.wait()
        kills += 1
        bronze = positions(DeltaTable(str(lake / "bronze/resource_changes")), FHIR_CHANGES)
        patient = positions(DeltaTable(str(lake / "silver/patient")), FHIR_CHANGES)
        disagreements += bronze != patient
    assert kills >= 2, (tmp_path / "sink.log").read_text()[-3000:]

    final = start_sink(env, tmp_path / "sink.log")
    assert final.wait(timeout=240) == 0, (tmp_path / "sink.log").read_text()[-3000:]
    print(f"{kills} kills, tables at different positions after {disagreements} of them")

    wanted = set(ids)
    bronze_rows = rows_of(
        DeltaTable(str(lake / "bronze/resource_changes")).to_pyarrow_table(
            columns=["resource_id", "version", "kafka_partition", "kafka_offset"]
        ),
        "resource_id",
        wanted,
    )
    positions_written = [(r["kafka_partition"], r["kafka_offset"]) for r in bronze_rows]
    assert len(positions_written) == len(set(positions_written)), "a change was written twice"
    assert set(positions_written) == {(d.partition, d.offset) for d in delivered}, (
        "a change was lost"
    )

    patients = rows_of(
        DeltaTable(str(lake / "silver/patient")).to_pyarrow_table(
            columns=["id", "family", "_version"]
        ),
        "id",
        wanted,
    )
    assert len(patients) == len(wanted - deleted)
    assert {p["id"] for p in patients} == wanted - deleted
    assert all(p["family"] == "v2" and p["_version"] == 2 for p in patients)
    idents = rows_of(
        DeltaTable(str(lake / "silver/patient_identifier")).to_pyarrow_table(
            columns=["patient_id", "_version"]
        ),
        "patient_id",
        wanted,
    )
    assert len(idents) == 2 * len(wanted - deleted)

    bronze_uri = str(lake / "bronze/resource_changes")
    tables = ["bronze/resource_changes", "silver/patient", "silver/patient_identifier"]
    # Each resolve walks the tables' versions, so checking every bronze version of a long run
    # costs minutes; check at most CHECKED_VERSIONS of them, spread over the run, the last one
    # included (every position is checked in test_lake_as_of.py and test_lake_exact.py).
    latest = DeltaTable(bronze_uri).version()
    step = max(1, latest // CHECKED_VERSIONS)
    for version in sorted({*range(latest, 0, -step), 1}):
        at = positions(DeltaTable(bronze_uri, version=version), FHIR_CHANGES)
        found = resolve(at, Lake(str(lake)), tables)
        inexact = [t for t in found.tables if not t.exact]
        assert found.complete and not inexact, (
            f"bronze version {version} of {latest} at {at}: complete {found.complete}, "
            f"not exact: {inexact}; sink log: {(tmp_path / 'sink.log').read_text()[-3000:]}"
        )
