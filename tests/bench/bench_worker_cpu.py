"""Benchmark (not a test): CPU seconds a real `carelog worker` spends per ORU^R01 (10 OBX).

Starts a broker of its own (or uses CARELOG_KAFKA_BOOTSTRAP), starts a worker and waits until
it is ready and has caught up with any input an earlier worker left uncommitted, then appends
N ORU^R01 with distinct patients and orders to carelog.inbound.hl7v2 and waits until every
one is on carelog.fhir.changes. The worker's CPU (user + system, from /proc) from the first
append to "all landed", divided by N, is its CPU per message: start-up and catching up are
left out (and printed), the idle cost of its commit loop is in. Each run also prints the
worker's idle CPU rate and the translated records it left uncommitted (none, unless the
worker's offset commits fall behind: a successor reads those again).

`--patients P` sends the N messages for P patients who each had a message before (those P
sent and landed first, not measured): what a hospital's feed mostly is, a patient's later
results. Each is sealed, as the edge seals it, with its patient's key, so no data key is made
for it anywhere; by default every message is a new patient's (two new data keys each).

`--source DIR` (repeatable) runs the worker from another checkout of carelog (same venv) and
`--env KEY=VALUE` (repeatable) this tree with those settings, so that versions or settings
are compared on the same machine state in one run: the runs alternate between the variants
and the ratios of the medians are printed. `--profile FILE` records the worker of every run
of this tree with py-spy (FILE.runN.EXT; `--format` raw or speedscope); py-spy is not a
dependency of carelog: point PY_SPY at an install of it (e.g. a venv of its own).

Run: .venv/bin/python -m tests.bench.bench_worker_cpu --messages 1500 [--source /tmp/old]
"""

from __future__ import annotations

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from processors.inbound_owner import inbound_owner
from schemas.events import Format, InboundMessage, ResourceChanged
from streams.admin import admin_client
from streams.event_codec import encode_event
from streams.lag import count_pending, group_lag, total
from streams.producer import EventProducer, Outgoing
from streams.settings import PROJECT_ROOT, Settings, get_settings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, inbound_topic
from tests.bench.bench_processors import inbound
from tests.bench.common import bench_settings
from tests.environ import environ
from tests.processors.worker_harness import read_all

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 3.0
COMMIT_SECONDS = 0.5  # the worker's default commit interval
CATCH_UP_SECONDS = 60.0


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS


@dataclass(frozen=True)
class Variant:
    """What one series of runs starts: the worker of `source`, with `env` set on top."""

    source: Path
    env: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return " ".join([str(self.source), *(f"{k}={v}" for k, v in self.env)])


@contextmanager
def encoding_as(variant: Variant) -> Iterator[None]:
    """This process encodes the input as the variant's worker reads it (e.g. with
    CARELOG_KEY_STORE=off, in clear: a worker without keys would take it as erased)."""
    with environ(dict(variant.env)):
        yield


def start_worker(
    source: Path, var_dir: Path, extra: tuple[tuple[str, str], ...] = ()
) -> subprocess.Popen[bytes]:
    env = {**os.environ, **dict(extra), "CARELOG_VAR_DIR": str(var_dir), "PYTHONPATH": str(source)}
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


def uncommitted(settings: Settings) -> int:
    """Records of carelog.fhir.translated the worker's group has not committed (markers not
    counted): after a run it should be none, or a redelivery awaits the next worker."""
    lags = group_lag(settings, admin_client(settings), settings.worker.app_id, [FHIR_TRANSLATED])
    return total(count_pending(settings, lags))


def send(settings: Settings, variant: Variant, events: list[InboundMessage]) -> None:
    """Append `events` as the edge does: sealed with the patient's key when it has one."""
    with encoding_as(variant), EventProducer(settings) as producer:
        producer.send_many(
            Outgoing(inbound_topic(Format.hl7v2), f"NWH|{i}",
                     encode_event(e, owner=inbound_owner(Format.hl7v2, e.payload or b"")))
            for i, e in enumerate(events)
        )  # fmt: skip


def wait_landed(settings: Settings, events: list[InboundMessage]) -> float:
    """Seconds since the last poll when every one of `events` is on carelog.fhir.changes."""
    wanted = {e.event_id for e in events}
    while True:
        polled = time.monotonic()
        if landed(settings, wanted) >= len(wanted):
            return time.monotonic() - polled
        time.sleep(1)


def one_run(
    settings: Settings,
    variant: Variant,
    messages: int,
    profile: tuple[Path, str] | None,
    patients: int = 0,
) -> float:
    """Worker CPU ms per message for `messages` ORU^R01, from `variant`; for `patients`
    patients seen before (0: each message a new patient)."""
    var_dir = Path(tempfile.mkdtemp(prefix="bench-worker-cpu-"))
    worker = start_worker(variant.source, var_dir, variant.env)
    spy: subprocess.Popen[bytes] | None = None
    try:
        wait_ready(var_dir)
        time.sleep(2)  # let the first commits and the changelog recovery settle
        # A worker that left input uncommitted leaves its successor to read it again: that
        # catching up is measured apart, so as not to charge it to the messages measured.
        caught_up, before = time.monotonic(), sum(cpu_seconds(worker.pid))
        while uncommitted(settings) and time.monotonic() - caught_up < CATCH_UP_SECONDS:
            time.sleep(COMMIT_SECONDS)
        print(
            f"  caught up with the input left uncommitted in {time.monotonic() - caught_up:.1f} s "
            f"({sum(cpu_seconds(worker.pid)) - before:.1f} s CPU)", flush=True,
        )  # fmt: skip
        idle_before = sum(cpu_seconds(worker.pid))
        time.sleep(IDLE_SECONDS)
        idle_rate = (sum(cpu_seconds(worker.pid)) - idle_before) / IDLE_SECONDS
        tag = time.time_ns()
        if patients:
            first = [inbound(hash((tag, "first", p)) & 0xFFFFFFF, hash((tag, "patient", p)) & 0xFFFFFFF)
                     for p in range(patients)]  # fmt: skip
            send(settings, variant, first)
            wait_landed(settings, first)
            print(f"  {patients} patients seen first (not measured)", flush=True)
            events = [inbound(hash((tag, i)) & 0xFFFFFFF,
                              hash((tag, "patient", i % patients)) & 0xFFFFFFF) for i in range(messages)]  # fmt: skip
        else:
            events = [inbound(hash((tag, i)) & 0xFFFFFFF) for i in range(messages)]
        user, system = cpu_seconds(worker.pid)
        if profile is not None:
            path, fmt = profile
            spy = subprocess.Popen(
                [os.environ.get("PY_SPY", str(Path(sys.executable).parent / "py-spy")), "record", "--pid",
                 str(worker.pid), "--format", fmt, "--output", str(path), "--rate", "200",
                 "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        started = time.monotonic()
        send(settings, variant, events)
        poll = wait_landed(settings, events)
        user_after, system_after = cpu_seconds(worker.pid)
        wall = time.monotonic() - started
        user, system = user_after - user, system_after - system
        print(
            f"  user {user / messages * 1000:.2f} ms, system {system / messages * 1000:.2f} ms "
            f"per message; {wall:.1f} s wall (last poll of the changes {poll:.1f} s), "
            f"idle worker {idle_rate * 1000:.0f} ms CPU/s", flush=True,
        )  # fmt: skip
        time.sleep(2 * COMMIT_SECONDS)
        print(f"  {uncommitted(settings)} translated records left uncommitted", flush=True)
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
    parser.add_argument("--patients", type=int, default=0,
                        help="messages for this many patients seen before (0: all new)")  # fmt: skip
    parser.add_argument(
        "--source", type=Path, action="append", default=[],
        help="another checkout to compare with (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE",
        help="compare with this tree run with these environment variables (repeatable)",
    )  # fmt: skip
    parser.add_argument("--profile", type=Path, help="py-spy output, one file per run")
    parser.add_argument("--format", default="raw", choices=["raw", "speedscope", "flamegraph"])
    args = parser.parse_args()
    variants = [Variant(PROJECT_ROOT)]
    variants.extend(Variant(source.resolve()) for source in args.source)
    if args.env:
        pairs = tuple((k, v) for k, _, v in (e.partition("=") for e in args.env))
        variants.append(Variant(PROJECT_ROOT, pairs))
    with bench_settings() as settings:
        os.environ["CARELOG_KAFKA_BOOTSTRAP"] = settings.kafka.bootstrap
        os.environ["CARELOG_ENVIRONMENT"] = "test"
        os.environ["CARELOG_WORKER_SESSION_TIMEOUT_SECONDS"] = "10"
        # One master key for this process and every worker (each has a var dir of its own).
        os.environ.setdefault(
            "CARELOG_MASTER_KEY", base64.b64encode(secrets.token_bytes(32)).decode()
        )
        get_settings.cache_clear()
        results: dict[Variant, list[float]] = {v: [] for v in variants}
        for run in range(args.runs):
            for variant in reversed(variants) if run % 2 else variants:
                # every run of the first variant is profiled, one file each: growth shows
                mine = args.profile is not None and variant == variants[0]
                path = (
                    args.profile.with_suffix(f".run{run + 1}{args.profile.suffix}")
                    if mine
                    else None
                )
                profile = (path, args.format) if path is not None else None
                ms = one_run(settings, variant, args.messages, profile, args.patients)
                results[variant].append(ms)
                print(f"run {run + 1} {variant}: {ms:.2f} ms CPU per message", flush=True)
        medians = {v: statistics.median(r) for v, r in results.items()}
        for variant, median in medians.items():
            runs = ", ".join(f"{v:.2f}" for v in results[variant])
            print(f"{variant!s:<40} {median:6.2f} ms worker CPU per ORU^R01 (runs: {runs})")
        for other in variants[1:]:
            ratio = medians[other] / medians[variants[0]]
            print(f"ratio {other} / {variants[0]}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
