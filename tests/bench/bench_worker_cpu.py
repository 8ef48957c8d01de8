"""Benchmark (not a test): CPU seconds a real `carelog worker` spends per ORU^R01 (10 OBX).

Starts a broker of its own (or uses CARELOG_KAFKA_BOOTSTRAP), starts a worker on an empty
log and waits until it is ready, then appends N ORU^R01 with distinct patients and orders to
carelog.inbound.hl7v2 and waits until every one is on carelog.fhir.changes. The worker's CPU
(user + system, from /proc) between "ready" and "all landed", divided by N, is its CPU per
message: start-up costs are left out, the idle cost of its commit loop is in.

`--source DIR` runs the worker from another checkout of carelog (same venv), so that two
versions of the code are compared on the same machine state in one run: the runs alternate
between the sources and the ratio of the medians is printed. `--profile FILE` records the
worker of every run with py-spy (FILE.runN.EXT) (`--format` raw or speedscope) while it works; py-spy is not a
dependency of carelog: install it into the venv first (`uv pip install py-spy`).

Run: .venv/bin/python -m tests.bench.bench_worker_cpu --messages 1500 [--source /tmp/old]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from schemas.events import Format, ResourceChanged, encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import FHIR_CHANGES, inbound_topic
from tests.bench.bench_processors import inbound
from tests.bench.common import bench_settings
from tests.processors.worker_harness import read_all

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 3.0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


def start_worker(source: Path, var_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CARELOG_VAR_DIR": str(var_dir), "PYTHONPATH": str(source)}
    log = (var_dir / "worker.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "worker", "--log-level", "info"],
        cwd=source, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_ready(var_dir: Path, timeout: float = 120) -> None:
    log = var_dir / "worker.log"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and "Worker ready" in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the worker did not become ready; see {log}")


def landed(settings: Settings, wanted: set[str]) -> int:
    return len(
        {e.inbound_event_id for _, e in read_all(settings, FHIR_CHANGES)
         if isinstance(e, ResourceChanged) and e.inbound_event_id in wanted}
    )  # fmt: skip


def one_run(
    settings: Settings, source: Path, messages: int, profile: tuple[Path, str] | None
) -> float:
    """Worker CPU ms per message for `messages` ORU^R01, from `source`."""
    var_dir = Path(tempfile.mkdtemp(prefix="bench-worker-cpu-"))
    worker = start_worker(source, var_dir)
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_ready(var_dir)
        time.sleep(2)  # let the first commits and the changelog recovery settle
        idle_before = sum(cpu_seconds(worker.pid))
        time.sleep(IDLE_SECONDS)
        idle_rate = (sum(cpu_seconds(worker.pid)) - idle_before) / IDLE_SECONDS
        tag = time.time_ns()
        events = [inbound(hash((tag, i)) & 0xFFFFFFF) for i in range(messages)]
        wanted = {e.event_id for e in events}
        user, system = cpu_seconds(worker.pid)
        if profile is not None:
            path, fmt = profile
            spy = subprocess.Popen(
                [os.environ.get("PY_SPY", str(Path(sys.executable).parent / "py-spy")), "record", "--pid",
                 str(worker.pid), "--format", fmt, "--output", str(path), "--rate", "200",
                 "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        with EventProducer(settings) as producer:
            producer.send_many(
                Outgoing(inbound_topic(Format.hl7v2), f"NWH|{i}", encode_event(e))
                for i, e in enumerate(events)
            )
        started = time.monotonic()
        while True:
            polled = time.monotonic()
            if landed(settings, wanted) >= messages:
                break
            time.sleep(1)
        user_after, system_after = cpu_seconds(worker.pid)
        wall, poll = time.monotonic() - started, time.monotonic() - polled
        user, system = user_after - user, system_after - system
        print(
            f"  user {user / messages * 1000:.2f} ms, system {system / messages * 1000:.2f} ms "
            f"per message; {wall:.1f} s wall (last poll of the changes {poll:.1f} s), "
            f"idle worker {idle_rate * 1000:.0f} ms CPU/s", flush=True,
        )  # fmt: skip
    finally:
        if spy is not None:
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            spy.wait(60)
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:  # a Faust worker sometimes hangs while stopping
            worker.kill()
            worker.wait()
    return (user + system) / messages * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--source", type=Path, help="another checkout to compare with")
    parser.add_argument("--profile", type=Path, help="py-spy output, one file per run")
    parser.add_argument("--format", default="raw", choices=["raw", "speedscope", "flamegraph"])
    args = parser.parse_args()
    sources = [PROJECT_ROOT] + ([args.source.resolve()] if args.source else [])
    with bench_settings() as settings:
        os.environ["CARELOG_KAFKA_BOOTSTRAP"] = settings.bootstrap
        os.environ["CARELOG_ENVIRONMENT"] = "test"
        os.environ["CARELOG_WORKER_SESSION_TIMEOUT_SECONDS"] = "10"
        results: dict[Path, list[float]] = {s: [] for s in sources}
        for run in range(args.runs):
            for source in reversed(sources) if run % 2 else sources:
                # every run of this tree is profiled, one file each: growth shows between them
                mine = args.profile is not None and source == PROJECT_ROOT
                path = (
                    args.profile.with_suffix(f".run{run + 1}{args.profile.suffix}")
                    if mine
                    else None
                )
                profile = (path, args.format) if path is not None else None
                ms = one_run(settings, source, args.messages, profile)
                results[source].append(ms)
                print(f"run {run + 1} {source}: {ms:.2f} ms CPU per message", flush=True)
        medians = {s: statistics.median(v) for s, v in results.items()}
        for source, median in medians.items():
            runs = ", ".join(f"{v:.2f}" for v in results[source])
            print(f"{source!s:<40} {median:6.2f} ms worker CPU per ORU^R01 (runs: {runs})")
        if args.source:
            ratio = medians[sources[1]] / medians[sources[0]]
            print(f"ratio {sources[1]} / {sources[0]}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
