"""A worker killed with SIGKILL mid-stream and restarted: no duplicate, no gap in versions,
and, restarted with its static member id (as `carelog run` gives it), it takes its partitions
back at once instead of after the dead member's session.

The worker has a consumer group of its own, started at the ends of its input topics.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from streams.settings import Settings
from tests.processors.test_worker_pipeline import changes_for, fhir_put, patient, publish
from tests.processors.worker_harness import Worker, start_group_at_ends, wait_for

pytestmark = pytest.mark.kafka

SESSION_SECONDS = 90


def test_sigkill_mid_stream_leaves_no_duplicate_and_no_gap(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(40)]
    rounds = 5  # every patient changes five times: versions 1..5 expected, exactly once each
    events = [
        fhir_put(patient(pid, birthDate=f"19{50 + r}-01-01")) for r in range(rounds) for pid in ids
    ]

    group = f"carelog-processors-crash-{uuid.uuid4().hex[:8]}"  # Faust's group is its app id
    start_group_at_ends(kafka_settings, group)
    publish(kafka_settings, events)
    worker = Worker(tmp_path / "crash", {
        "CARELOG_PROCESSORS_APP_ID": group,
        "CARELOG_WORKER_INSTANCE_ID": f"{group}-worker",
        # Longer than the wait below: without its static id, the restarted worker would get
        # no partition until the killed one's session ended.
        "CARELOG_WORKER_SESSION_TIMEOUT_SECONDS": str(SESSION_SECONDS),
    })  # fmt: skip
    worker.start()
    try:
        wait_for(
            lambda: sum(map(len, changes_for(kafka_settings, set(ids)).values())) > 10,
            120,
            worker,
            0.5,
        )
        worker.kill()  # mid-stream: some transactions are open
        worker.start()
        expected = len(ids) * rounds
        wait_for(
            lambda: sum(map(len, changes_for(kafka_settings, set(ids)).values())) >= expected,
            SESSION_SECONDS / 2,
            worker,
        )
    finally:
        worker.stop()
    found = changes_for(kafka_settings, set(ids))
    for pid in ids:
        seen = [
            (c.version, orjson.loads(c.resource or "{}").get("birthDate"), c.inbound_event_id[:8])
            for c in found[pid]
        ]
        assert [c.version for c in found[pid]] == list(range(1, rounds + 1)), seen
        assert (
            orjson.loads(found[pid][-1].resource or "")["birthDate"] == f"19{50 + rounds - 1}-01-01"
        )
