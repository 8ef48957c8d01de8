"""Real `carelog worker` processes and readers of what they append, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from schemas.events import Event, Format
from streams.consumer import take_ready
from streams.event_codec import decode_event
from streams.kafka_config import reader_config
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import FHIR_TRANSLATED, inbound_topic
from tests.bench.common import wait_for_leaders


class Worker:
    def __init__(self, var_dir: Path, env: dict[str, str] | None = None) -> None:
        self.var_dir = var_dir
        self.env = env or {}  # CARELOG_* settings of this worker's own
        self.log = var_dir / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CARELOG_VAR_DIR": str(self.var_dir), **self.env}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", "worker", "--log-level", "info"],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-8000:] if self.log.exists() else ""


class SharedWorker:
    """One `carelog worker` for the test modules that can share it (each uses resource ids of
    its own): a worker's start (imports, joining the group, its first transactions) costs
    10-25 s, so it starts once for all of them. tests/conftest.py runs the tests asking for
    it one after the other and stops it after the last, so that no other test (one that
    kills its own worker, or starts another member of the group) meets it."""

    def __init__(self) -> None:
        self.worker: Worker | None = None

    def running(self, var_dir: Callable[[], Path]) -> Worker:
        """The shared worker, started on first use (in the folder `var_dir()` makes)."""
        if self.worker is None:
            self.worker = Worker(var_dir())
            self.worker.start()
        proc = self.worker.proc
        # A worker that died must fail the test that meets it, not be replaced unnoticed.
        assert proc is not None and proc.poll() is None, (
            f"the shared worker exited\n{self.worker.tail()}"
        )
        return self.worker

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None


SHARED_WORKER = SharedWorker()


def read_all(settings: Settings, topic: str) -> list[tuple[bytes | None, Event]]:
    """Every committed event on `topic` now (read_committed: aborted transactions are skipped)."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap,
            "group.id": "test-reader",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    out: list[tuple[bytes | None, Event]] = []
    done: set[int] = set()
    while len(done) < len(meta.partitions):
        for msg in take_ready(consumer, 1000, 2.0):
            if msg.error() is None:
                out.append((msg.key(), decode_event(msg.value())))
            else:
                done.add(msg.partition())
    consumer.close()
    return out


def wait_for(
    what: Callable[[], bool], timeout: float, worker: Worker | None = None, every: float = 0.3
) -> None:
    """Poll `what` until it holds (its reads of the log stop at the log's end, so a look costs
    little); past `timeout` fail with the worker's log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout:.0f}s" + (f"\n{worker.tail()}" if worker else "")
    )


def start_group_at_ends(settings: Settings, group: str) -> None:
    """Commit `group`'s offsets at the ends of the worker's input topics, before it exists: a
    worker of a group of its own then does only what a test sends it, not the session's log."""
    topics = [*(inbound_topic(f) for f in Format), FHIR_TRANSLATED]
    wait_for_leaders(settings, topics, time.monotonic() + 60)  # a fresh broker elects them first
    reader = Consumer(reader_config(settings, "test-group-start", **{"group.id": group}))
    try:
        tps = []
        for topic in topics:
            for p in reader.list_topics(topic, timeout=10).topics[topic].partitions:
                tp = TopicPartition(topic, p)
                tp.offset = reader.get_watermark_offsets(tp, timeout=10)[1]
                tps.append(tp)
        reader.commit(offsets=tps, asynchronous=False)
    finally:
        reader.close()
