"""A worker killed with SIGKILL mid-stream and restarted: no duplicate, no gap in versions.

In a module of its own so that no other worker shares the group while it runs.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest

from streams.settings import Settings
from tests.processors.test_worker_pipeline import changes_for, fhir_put, patient, publish
from tests.processors.worker_harness import Worker, wait_for

pytestmark = pytest.mark.kafka


def test_sigkill_mid_stream_leaves_no_duplicate_and_no_gap(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    ids = [str(uuid.uuid4()) for _ in range(40)]
    rounds = 5  # every patient changes five times: versions 1..5 expected, exactly once each
    events = [
        fhir_put(patient(pid, birthDate=f"19{50 + r}-01-01")) for r in range(rounds) for pid in ids
    ]
    publish(kafka_settings, events)

    worker = Worker(tmp_path / "crash")
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
            240,
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
