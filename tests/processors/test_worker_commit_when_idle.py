"""The worker commits as soon as it has handled what it read (processors/commit_when_idle.py),
not only on its commit timer: an output is readable (read_committed) without waiting for it.

In a module of its own so that no other worker shares the group while it runs.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from streams.kafka_config import reader_config
from streams.settings import Settings
from streams.topics import FHIR_CHANGES
from tests.processors.test_worker_pipeline import fhir_put, patient, publish
from tests.processors.worker_harness import Worker

pytestmark = pytest.mark.kafka

TIMER_SECONDS = 30  # each of the two stages would wait up to this long for the timer alone


def _tail(settings: Settings) -> Consumer:
    """A read_committed reader of carelog.fhir.changes from its end now."""
    consumer = Consumer(reader_config(settings, "test-commit-when-idle"))
    parts = consumer.list_topics(FHIR_CHANGES, timeout=10).topics[FHIR_CHANGES].partitions
    consumer.assign([TopicPartition(FHIR_CHANGES, p, OFFSET_END) for p in parts])
    return consumer


def _seconds_until_readable(consumer: Consumer, key: bytes, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        msg = consumer.poll(0.1)
        if msg is not None and msg.error() is None and msg.key() == key:
            return time.monotonic() - started
    raise AssertionError(f"{key!r} not readable after {timeout:.0f}s")


def test_a_change_is_readable_long_before_the_commit_timer(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    env = {
        "CARELOG_WORKER_COMMIT_INTERVAL_SECONDS": str(TIMER_SECONDS),
        "CARELOG_WORKER_COMMIT_IDLE_SECONDS": "0.05",
    }
    worker = Worker(tmp_path / "idle-commit", env)
    consumer = _tail(kafka_settings)
    worker.start()
    try:
        first = str(uuid.uuid4())  # through once: the worker has joined and caught up
        publish(kafka_settings, [fhir_put(patient(first))])
        _seconds_until_readable(consumer, f"Patient/{first}".encode(), 4 * TIMER_SECONDS)
        waits = []
        for _ in range(3):
            pid = str(uuid.uuid4())
            publish(kafka_settings, [fhir_put(patient(pid))])
            waits.append(_seconds_until_readable(consumer, f"Patient/{pid}".encode(), 90))
    finally:
        consumer.close()
        worker.stop()
    assert max(waits) < TIMER_SECONDS / 3, (waits, worker.tail())
