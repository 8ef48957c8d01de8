"""Do reads slow writes down? Write-to-readable latency with and without a steady read load.

Each run starts a fresh set of the real processes (`carelog gateway | mllp | worker |
projection | sink`, tests/system/harness.py's System with the product's defaults and every
read audited, as in production) on a bench broker, then offers a steady write load: --writes
FHIR `PUT /fhir/Patient/{id}` per second with `Prefer: respond-async`, each a new Patient.
A write is readable once the FHIR store the gateway reads from holds it (the bench looks into
the store file itself, so that measuring adds no reads, and no AuditEvents, of its own).

Two kinds of phase of --seconds each, the first --warmup seconds of each not counted:

- quiet: writes alone;
- reads: the same writes plus a steady --reads GET /fhir/Patient/{id} per second (a patient
  app reading one record again and again, over --connections keep-alive connections), every
  one of them audited.

They alternate, quiet then reads, --cycles times, each phase drained (its writes readable)
before the next starts: on a shared machine whose load drifts, both kinds then sample the
same stretch of time. It prints write-to-readable p50/p99 of each kind and their ratio (goal:
at most 1.2: reads must not starve writes), the read rate achieved, how many of the reads
have their AuditEvent readable in the store at the end (every access stays audited), and the
CPU each process used per second of each kind (where the reads cost).

    .venv/bin/python -m tests.bench.bench_audit_reads [--writes 20] [--reads 500] [--cycles 3]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from api.security.dev_token import mint_token
from tests.bench.bench_e2e import cpu_by_process, http_request, pace, pct
from tests.bench.common import RUNS, bench_settings, http_response
from tests.system.harness import COMPONENTS, SECRET, System

SCOPES = "system/*.write system/*.read"
KINDS = ("quiet", "reads")
POLL_SECONDS = 0.05


@dataclass
class Phase:
    kind: str  # quiet or reads
    name: str  # unique in the run
    writes: float  # per second
    reads: float  # per second, 0 for none
    seconds: float
    warmup: float
    started: float = 0.0
    sent: dict[str, float] = field(default_factory=dict)  # Patient id -> when its PUT was sent
    readable: dict[str, float] = field(default_factory=dict)
    reads_done: int = 0
    errors: list[str] = field(default_factory=list)

    def latencies(self) -> list[float]:
        counted = self.started + self.warmup
        return [self.readable[p] - s for p, s in self.sent.items()
                if s >= counted and p in self.readable]  # fmt: skip

    async def paced(self, rate: float, lane: int, lanes: int) -> AsyncIterator[int]:
        """Lane `lane` of `lanes` sharing `rate` requests/s: each request number when due,
        until the phase ends."""
        for n in itertools.count(lane, lanes):
            due = self.started + n / rate
            if due >= self.started + self.seconds:
                return
            await pace(due)
            yield n


def patient(pid: str) -> bytes:
    return orjson.dumps({"resourceType": "Patient", "id": pid, "gender": "unknown",
                         "name": [{"family": "Bench", "given": ["Audit"]}]})  # fmt: skip


def auth(token: str) -> bytes:
    return f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n".encode()


async def writer(phase: Phase, port: int, token: str, run: str, lane: int, lanes: int) -> None:
    reader, stream = await asyncio.open_connection("127.0.0.1", port)
    try:
        async for n in phase.paced(phase.writes, lane, lanes):
            pid = f"w{run}-{phase.name}-{n}"
            head = (b"PUT /fhir/Patient/%s HTTP/1.1\r\n" % pid.encode() + auth(token)
                    + b"Content-Type: application/fhir+json\r\nPrefer: respond-async\r\n")  # fmt: skip
            phase.sent[pid] = time.time()
            status, answer = await http_request(reader, stream, head, patient(pid))
            if not status.startswith(b"HTTP/1.1 20"):
                phase.errors.append(f"PUT: {status!r} {answer[:200]!r}")
    finally:
        stream.close()


async def read_load(phase: Phase, port: int, token: str, target: str, lane: int,
                    lanes: int) -> None:  # fmt: skip
    reader, stream = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /fhir/Patient/{target} HTTP/1.1\r\n".encode() + auth(token) + b"\r\n"
    try:
        async for _ in phase.paced(phase.reads, lane, lanes):
            stream.write(request)
            status, _ = await http_response(reader)
            if status.startswith(b"HTTP/1.1 200"):
                phase.reads_done += 1
            else:
                phase.errors.append(f"GET: {status!r}")
    finally:
        stream.close()


def in_store(store: Path, ids: list[str]) -> list[str]:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        marks = ",".join("?" * len(ids))
        return [r[0] for r in conn.execute(
            f"SELECT id FROM resources WHERE type = 'Patient' AND id IN ({marks})", ids)]  # fmt: skip
    finally:
        conn.close()


def count_audit_events(store: Path) -> int:
    conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute(
            "SELECT count(*) FROM resources WHERE type = 'AuditEvent'").fetchone()[0])  # fmt: skip
    finally:
        conn.close()


async def watch(phase: Phase, store: Path, done: asyncio.Event, drain: float) -> None:
    """Note when each write becomes readable in the store; after `done`, wait at most
    `drain` seconds for the rest."""
    deadline = float("inf")
    while True:
        pending = [p for p in list(phase.sent) if p not in phase.readable]
        if pending:
            found = await asyncio.to_thread(in_store, store, pending[:500])
            now = time.time()
            for pid in found:
                phase.readable[pid] = now
        if done.is_set():
            deadline = min(deadline, time.time() + drain)
            if not pending or time.time() > deadline:
                return
        await asyncio.sleep(POLL_SECONDS)


async def run_phase(phase: Phase, system: System, token: str, target: str,
                    connections: int, drain: float) -> None:  # fmt: skip
    phase.started = time.time() + 0.5
    done = asyncio.Event()
    watcher = asyncio.create_task(watch(phase, system.store_path, done, drain))
    lanes = 2
    load = [writer(phase, system.gateway_port, token, system.run, i, lanes) for i in range(lanes)]
    if phase.reads:
        load += [read_load(phase, system.gateway_port, token, target, i, connections)
                 for i in range(connections)]  # fmt: skip
    try:
        await asyncio.gather(*load)
    finally:
        done.set()
        await watcher


async def prime(system: System, token: str, target: str, timeout: float = 120) -> None:
    """The read target written through the log and readable: the pipeline has started."""
    reader, stream = await asyncio.open_connection("127.0.0.1", system.gateway_port)
    head = (b"PUT /fhir/Patient/%s HTTP/1.1\r\n" % target.encode() + auth(token)
            + b"Content-Type: application/fhir+json\r\nPrefer: respond-async\r\n")  # fmt: skip
    status, answer = await http_request(reader, stream, head, patient(target))
    stream.close()
    assert status.startswith(b"HTTP/1.1 20"), answer
    deadline = time.monotonic() + timeout
    while not in_store(system.store_path, [target]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target} never became readable\n{system.explain()}")
        await asyncio.sleep(0.2)


def one_run(args: argparse.Namespace, token: str) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        with bench_settings() as settings:
            audit = "true" if args.audit else "false"
            system = System(
                root, settings.kafka.bootstrap, tuned=False, CARELOG_FHIR_AUDIT_READS=audit
            )
            try:
                system.start()
                target = f"r{system.run}"
                asyncio.run(prime(system, token, target))
                phases = [
                    Phase(kind, f"{kind}{cycle}", args.writes, args.reads if kind == "reads" else 0,
                          args.seconds, args.warmup)
                    for cycle in range(args.cycles) for kind in KINDS
                ]  # fmt: skip
                audits_before = count_audit_events(system.store_path)
                cpu = {f"cpu {k} {n}": 0.0 for k in KINDS for n in COMPONENTS}
                for phase in phases:
                    before = cpu_by_process(system)
                    asyncio.run(run_phase(phase, system, token, target, args.connections,
                                          args.drain))  # fmt: skip
                    after = cpu_by_process(system)
                    for n in COMPONENTS:
                        cpu[f"cpu {phase.kind} {n}"] += (after[n] - before[n]) / (
                            phase.seconds * args.cycles
                        )
                    if phase.errors:
                        print(f"  {phase.name}: {len(phase.errors)} errors, first: "
                              f"{phase.errors[0]}", flush=True)  # fmt: skip
                reads_done = sum(p.reads_done for p in phases)
                deadline = time.monotonic() + args.drain
                audited = 0
                while args.audit and time.monotonic() < deadline:  # each read's AuditEvent
                    audited = count_audit_events(system.store_path) - audits_before
                    if audited >= reads_done:
                        break
                    time.sleep(0.5)
                for name, proc in system.procs.items():
                    if not proc.running:
                        raise RuntimeError(f"{name} exited during the load\n{proc.tail()}")
            finally:
                system.stop()
        quiet, loaded = ([x for p in phases if p.kind == k for x in p.latencies()] for k in KINDS)
        return {
            "quiet p50": pct(quiet, 0.5), "quiet p99": pct(quiet, 0.99),
            "reads p50": pct(loaded, 0.5), "reads p99": pct(loaded, 0.99),
            "ratio p50": pct(loaded, 0.5) / pct(quiet, 0.5),
            "ratio p99": pct(loaded, 0.99) / pct(quiet, 0.99),
            "reads/s": reads_done / (args.seconds * args.cycles),
            "audited": audited, "reads": reads_done,
            "writes unreadable": sum(len(p.sent) - len(p.readable) for p in phases),
            **cpu,
        }  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=float, default=20.0, help="FHIR PUT/s")
    parser.add_argument("--reads", type=float, default=500.0, help="GET/s in the second phase")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="first seconds not counted")
    parser.add_argument("--cycles", type=int, default=3, help="quiet/reads pairs per run")
    parser.add_argument("--connections", type=int, default=8, help="reading connections")
    parser.add_argument("--drain", type=float, default=60.0,
                        help="after a phase, wait at most this long for its writes to land")  # fmt: skip
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--no-audit", dest="audit", action="store_false",
                        help="reads not audited: the control that shows what reading costs alone")  # fmt: skip
    args = parser.parse_args()
    token = mint_token(SECRET, SCOPES, "bench-audit", ttl=24 * 3600)
    print(f"reads vs writes: {args.writes:g} FHIR PUT/s, then the same with {args.reads:g} "
          f"{'audited' if args.audit else 'unaudited'} GET/s, alternating {args.cycles} times; {args.seconds:g}s per phase, first "
          f"{args.warmup:g}s not counted; "
          f"median of {args.runs}; load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    runs = []
    for n in range(args.runs):
        print(f"run {n + 1}:", flush=True)
        runs.append(one_run(args, token))
        print("  " + ", ".join(f"{k} {v:,.3f}" if isinstance(v, float) else f"{k} {v:,}"
                               for k, v in runs[-1].items()), flush=True)  # fmt: skip
    print(f"load average at the end {os.getloadavg()[0]:.1f}; medians (runs):")
    for key, label in [("quiet p50", "write -> readable p50, writes alone"),
                       ("quiet p99", "write -> readable p99, writes alone"),
                       ("reads p50", f"write -> readable p50, with {args.reads:g} reads/s"),
                       ("reads p99", f"write -> readable p99, with {args.reads:g} reads/s"),
                       ("ratio p50", "ratio p50 (goal <= 1.2)"),
                       ("ratio p99", "ratio p99"),
                       ("reads/s", "reads/s achieved"),
                       *((f"cpu {p} {n}", f"CPU s/s of {n}, {p}") for p in ("quiet", "reads")
                         for n in COMPONENTS)]:  # fmt: skip
        values = [r[key] for r in runs]
        spread = ", ".join(f"{v:,.3f}" for v in values)
        print(f"  {label:<48} {statistics.median(values):>10,.3f}   ({spread})")
    print(
        f"  reads whose AuditEvent was readable at the end: {sum(r['audited'] for r in runs):,.0f}"
        f" of {sum(r['reads'] for r in runs):,.0f}"
    )


if __name__ == "__main__":
    main()
