"""Shared bits of the benchmarks: a ready broker, fresh topics, medians."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from streams.admin import admin_client, apply_catalogue
from streams.kafka_config import client_config, producer_config
from streams.settings import Settings
from streams.settings.kafka import KafkaSettings
from streams.topics import Topic, catalogue
from tests.environ import environ
from tests.kafka_fixture import test_broker
from tests.system.harness import SYSTEM_MASTER_KEY, gateway_ready

RUNS = 3
READY_TIMEOUT_SECONDS = 180.0


def keys_in_this_process() -> None:
    """An in-process bench seals and opens events as the worker does, with its data keys in
    memory (MemoryKeyStore: the same AES-GCM, a dict lookup) instead of on carelog.keys of a
    broker it does not start: run alone, it would fail without one. Subprocesses inherit it;
    CARELOG_KEY_STORE set by the caller (e.g. `off`, to compare) wins."""
    os.environ.setdefault("CARELOG_KEY_STORE", "memory")


@contextmanager
def bench_settings() -> Iterator[Settings]:
    """The configured cluster, or a broker of the benchmark's own (like the test session's),
    ready to measure on: the topic catalogue applied, every partition led, the group and
    transaction coordinators loaded."""
    with test_broker() as bootstrap:
        # This process seals and opens events as the system it starts does: keys on this
        # broker, wrapped by the system's master key (tests/system/harness.py).
        env = {"CARELOG_KAFKA_BOOTSTRAP": bootstrap, "CARELOG_ENVIRONMENT": "test",
               "CARELOG_MASTER_KEY": os.environ.get("CARELOG_MASTER_KEY") or SYSTEM_MASTER_KEY}  # fmt: skip
        with environ(env):
            settings = Settings(environment="test", kafka=KafkaSettings(cluster=bootstrap))
            wait_until_broker_ready(settings)
            yield settings


def wait_until_broker_ready(settings: Settings, timeout: float = READY_TIMEOUT_SECONDS) -> None:
    """Apply the topic catalogue, then return once a fresh broker serves everything a bench
    uses (a cold broker answers COORDINATOR_LOAD_IN_PROGRESS / NOT_LEADER for a while, and a
    producer or worker started then stalls until its timeouts instead of measuring)."""
    deadline = time.monotonic() + timeout
    topics = catalogue(settings.environment)
    apply_catalogue(topics, settings)
    wait_for_leaders(settings, (t.name for t in topics), deadline)
    _retry_until(deadline, "the group coordinator", lambda: _group_coordinator_answers(settings))
    _retry_until(deadline, "the transaction coordinator", lambda: _transactions_work(settings))


def wait_for_leaders(settings: Settings, names: Iterable[str], deadline: float) -> None:
    """Return once every partition of `names` has a leader that answers for its offsets."""
    wanted = list(names)
    _retry_until(deadline, f"leaders of {len(wanted)} topics", lambda: _all_led(settings, wanted))


def _all_led(settings: Settings, names: list[str]) -> None:
    meta = admin_client(settings).list_topics(timeout=10)
    consumer = Consumer(client_config(settings, **{"group.id": f"bench-ready-{uuid.uuid4()}"}))
    try:
        for name in names:
            topic = meta.topics.get(name)
            if topic is None or topic.error is not None or not topic.partitions:
                raise KafkaException(f"topic {name} is not there yet")
            for p, partition in topic.partitions.items():
                if partition.leader < 0 or partition.error is not None:
                    raise KafkaException(f"{name}[{p}] has no leader yet")
                consumer.get_watermark_offsets(TopicPartition(name, p), timeout=10)
    finally:
        consumer.close()


def _group_coordinator_answers(settings: Settings) -> None:
    """Offset fetch goes to the group coordinator: it fails while __consumer_offsets loads."""
    name = catalogue(settings.environment)[0].name
    probe = client_config(settings, **{"group.id": "bench-ready", "enable.auto.commit": False})
    consumer = Consumer(probe)
    try:
        for tp in consumer.committed([TopicPartition(name, 0)], timeout=10):
            if tp.error is not None:
                raise KafkaException(tp.error)
    finally:
        consumer.close()


def _transactions_work(settings: Settings) -> None:
    """One empty transaction: the worker's exactly-once producers need the coordinator."""
    producer = Producer(producer_config(settings, **{"transactional.id": "bench-ready"}))
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.commit_transaction(30)


def _retry_until(deadline: float, what: str, attempt: Callable[[], None]) -> None:
    while True:
        try:
            attempt()
            return
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bench broker did not get ready ({what}): {exc}") from exc
            time.sleep(0.5)


def fresh_topic(settings: Settings, partitions: int = 6, prefix: str = "bench") -> str:
    name = f"{prefix}.{uuid.uuid4().hex[:8]}"
    apply_catalogue(
        [Topic(name, "bench", "bench", partitions, 1, 1, {"retention.ms": "-1"})], settings
    )
    wait_for_leaders(settings, [name], time.monotonic() + READY_TIMEOUT_SECONDS)
    return name


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


def show(label: str, value: float, values: list[float], unit: str) -> None:
    spread = ", ".join(f"{v:,.0f}" for v in values)
    print(f"{label:<52} {value:>12,.0f} {unit}   (runs: {spread})", flush=True)


def wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 60.0) -> None:
    """Return once the gateway on `port` answers /readyz with 200; kill it after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gateway_ready(f"http://127.0.0.1:{port}"):
            return
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("the gateway did not become ready")


def process_tree(pid: int) -> list[int]:
    """`pid` and every process below it (uvicorn's workers, a gateway's children)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [pid], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of `pid` and every process below it."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def tree_queued_seconds(pid: int) -> float:
    """Seconds the threads of `pid` and of every process below it spent runnable but waiting
    for a core: on a full machine, what a process lost to the others."""
    return queued_seconds(process_tree(pid))


def main_thread_schedstat(pid: int) -> tuple[float, float]:
    """Seconds the main thread of `pid` has been on a core and waiting for one."""
    fields = Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()
    return int(fields[0]) / 1e9, int(fields[1]) / 1e9


def queued_seconds(pids: Iterable[int]) -> float:
    """Seconds the live threads of `pids` spent in the run queue (/proc/<pid>/task/<tid>/
    schedstat, its second field)."""
    total = 0
    for pid in pids:
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile, or no schedstats
            continue
    return total / 1e9


async def http_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One HTTP/1.1 response read off a kept-alive connection: its status line and body
    (the servers benched answer with Content-Length, never chunked)."""
    status = await reader.readuntil(b"\r\n")
    length = 0
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length)


def loop_seconds(iterations: int = 20_000_000) -> float:
    """CPU seconds a fixed pure-Python loop takes now. This host's speed per CPU second drifts
    by more than its steal time shows (0.41 to 0.63 s for this loop within a morning), so a
    run's figures are read with this beside them."""
    started = time.process_time()
    total = 0
    for i in range(iterations):
        total += i
    return time.process_time() - started
