"""Benchmark (not a test): how the processors scale out, 1 worker vs 2 (vs more) on one log.

carelog scales the processors by adding `carelog worker` processes with the same app id:
the consumer group spreads the partitions of carelog.inbound.* and carelog.fhir.translated
over them. This bench starts K workers (each a process of its own, one var dir each) on a
broker of its own (or CARELOG_KAFKA_BOOTSTRAP), waits until every one is ready and the group
has settled, then appends N ORU^R01 (10 OBX; distinct patients and orders, spread over the
inbound partitions by their keys) in one burst, and times the burst until every message has
its changes on carelog.fhir.changes (read_committed, counted by a consumer that reads only
what is new). The load is in-process-bound: the messages are already on the log, so the
figure is what K workers drain, not what a sender offers.

Prints messages/s per K (median of --runs), the ratio to K=1 (the scale-out curve) and the
workers' CPU per message. The broker, the bench and the workers share this machine's cores:
the curve flattens where the cores run out, and the figure says so.

Run: .venv/bin/python -m tests.bench.bench_worker_scaleout [--workers 1 2] [--messages 1500]
     [--partitions 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from schemas.events import Format, ResourceChanged
from streams.event_codec import decode_event, encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import FHIR_CHANGES, inbound_topic
from tests.bench.bench_processors import inbound
from tests.bench.bench_worker_cpu import cpu_seconds, start_worker
from tests.bench.common import bench_settings

SETTLE_SECONDS = 5.0  # after the last worker is ready: the group's last rebalance ends


class LandedCounter:
    """Counts the wanted inbound events whose changes are committed on carelog.fhir.changes,
    reading each change once (from the end offsets taken when it was made)."""

    def __init__(self, settings: Settings, wanted: set[str]) -> None:
        self.wanted = set(wanted)
        self.landed: set[str] = set()
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap,
                "group.id": "bench-scaleout-counter",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        meta = self.consumer.list_topics(FHIR_CHANGES, timeout=10).topics[FHIR_CHANGES]
        start = []
        for p in meta.partitions:
            _, high = self.consumer.get_watermark_offsets(TopicPartition(FHIR_CHANGES, p), 10)
            start.append(TopicPartition(FHIR_CHANGES, p, high))
        self.consumer.assign(start)

    def poll(self, seconds: float) -> int:
        for msg in self.consumer.consume(5000, seconds):
            if msg.error() is None:
                event = decode_event(msg.value() or b"")
                if isinstance(event, ResourceChanged) and event.inbound_event_id in self.wanted:
                    self.landed.add(event.inbound_event_id)
        return len(self.landed)

    def close(self) -> None:
        self.consumer.close()


def start_all(procs: list[subprocess.Popen[bytes]], var_dirs: list[Path]) -> None:
    """Wait until every worker is ready. One that exits first is started again, as `carelog
    run`'s supervisor does: faust-streaming's table recovery sometimes reads a changelog's end
    offset as missing when a worker joins right after another left, and stops the worker
    with a ConsistencyError (faust-streaming issue 158); the next start recovers."""
    deadline = time.monotonic() + 300
    ready: set[int] = set()
    while len(ready) < len(procs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not ready; see the worker.log files in {var_dirs}")
        for i, (proc, var_dir) in enumerate(zip(procs, var_dirs, strict=True)):
            log = var_dir / "worker.log"
            if i in ready:
                continue
            if log.exists() and "Worker ready" in log.read_text(errors="replace"):
                ready.add(i)
            elif proc.poll() is not None:
                print(f"  worker {i} exited while starting (see {log}); starting it again")
                log.rename(log.with_suffix(f".{time.time_ns()}.log"))
                procs[i] = start_worker(PROJECT_ROOT, var_dir)
        time.sleep(0.5)


def one_run(settings: Settings, workers: int, messages: int) -> tuple[float, float]:
    """(messages/s drained, worker CPU ms per message) with `workers` workers."""
    var_dirs = [Path(tempfile.mkdtemp(prefix=f"bench-scaleout-{i}-")) for i in range(workers)]
    procs = [start_worker(PROJECT_ROOT, d) for d in var_dirs]
    try:
        start_all(procs, var_dirs)
        time.sleep(SETTLE_SECONDS)
        tag = time.time_ns()
        events = [inbound(hash((tag, i)) & 0xFFFFFFF) for i in range(messages)]
        counter = LandedCounter(settings, {e.event_id for e in events})
        cpu_before = sum(sum(cpu_seconds(p.pid)) for p in procs)
        start = time.monotonic()
        with EventProducer(settings) as producer:
            producer.send_many(
                Outgoing(inbound_topic(Format.hl7v2), f"NWH|{tag}|{i}", encode_event(e))
                for i, e in enumerate(events)
            )
        deadline = start + max(600.0, messages / 2)
        while counter.poll(0.5) < messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(counter.landed)} of {messages} landed in time")
        elapsed = time.monotonic() - start
        cpu = sum(sum(cpu_seconds(p.pid)) for p in procs) - cpu_before
        counter.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:  # a Faust worker sometimes hangs while stopping
                proc.kill()
                proc.wait()
    return messages / elapsed, cpu / messages * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=3)
    # A log meant for several workers has partitions to spare: with the single machine's 2,
    # two workers drained 1.47x what one did (238 / 162 ORU/s), with 6 1.78x (docs/figures.md).
    parser.add_argument("--partitions", type=int, default=6, help="of the processing topics")
    args = parser.parse_args()
    os.environ["CARELOG_KAFKA_PARTITIONS"] = str(args.partitions)  # the catalogue applied
    with bench_settings() as settings:
        os.environ["CARELOG_KAFKA_BOOTSTRAP"] = settings.kafka.bootstrap
        os.environ["CARELOG_ENVIRONMENT"] = "test"
        os.environ["CARELOG_WORKER_SESSION_TIMEOUT_SECONDS"] = "10"
        rates: dict[int, list[float]] = {k: [] for k in args.workers}
        cpus: dict[int, list[float]] = {k: [] for k in args.workers}
        for run in range(args.runs):
            order = list(reversed(args.workers)) if run % 2 else args.workers
            for k in order:
                rate, cpu = one_run(settings, k, args.messages)
                rates[k].append(rate)
                cpus[k].append(cpu)
                print(f"run {run + 1}, {k} worker(s): {rate:.0f} ORU/s, "
                      f"{cpu:.2f} ms worker CPU per message", flush=True)  # fmt: skip
        base = statistics.median(rates[args.workers[0]])
        print(f"scale-out, {args.messages} ORU^R01 (10 OBX) drained from the log of "
              f"{args.partitions} partitions a topic, median of {args.runs} "
              f"(cores here: {os.cpu_count()}):")  # fmt: skip
        for k in args.workers:
            rate = statistics.median(rates[k])
            print(f"  {k} worker(s): {rate:7.0f} ORU/s  x{rate / base:.2f}  "
                  f"{statistics.median(cpus[k]):.2f} ms CPU/message "
                  f"(runs: {', '.join(f'{r:.0f}' for r in rates[k])})")  # fmt: skip


if __name__ == "__main__":
    main()
