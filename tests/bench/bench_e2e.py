"""End-to-end benchmark: senders -> ACK -> readable over /fhir -> visible in Delta.

Each run starts a fresh set of the real processes (`carelog gateway | mllp | worker |
projection | sink`, each a subprocess with a CARELOG_VAR_DIR, store, lake, consumer groups
and ports of its own) on a bench broker (a LocalBroker on free ports, or
CARELOG_KAFKA_BOOTSTRAP when set), then drives a paced load for --seconds from concurrent
senders, a third on each channel:

- MLLP: ADT^A28 and ORU^R01 (4 OBX) alternately, --connections connections, one message in
  flight each (as MLLP senders do);
- HTTP POST /hl7v2: the same two messages alternately;
- HTTP PUT /fhir/Patient/{id} with `Prefer: respond-async` (answered 202 once appended, like
  the HL7 routes, instead of waiting for the store).

Every message creates a Patient of its own (a fresh MRN or id), so the number of Patients in
the store and in the silver `patient` table counts the messages through. Per message the
send and ACK times are recorded; for every --sample-every'th message the bench polls
`GET /fhir/Patient?_id=...` (the oldest 80 pending, every 100 ms) until its Patient is
readable, and reads
the silver patient table's Delta log (each new commit's files) to learn when it became
visible there (the commit file's mtime). Figures of a run:

- messages/s acknowledged, and messages/s through to the FHIR store and to Delta, counted
  over the load after --warmup seconds (the sustained rate);
- the backlog (acknowledged, not yet readable over /fhir) after the warm-up and at the end
  of the load: flat when the pipeline keeps up (a sustained rate), growing when it does not;
- ACK latency p50/p99 (every message), send -> readable over /fhir p50/p99 and
  send -> visible in Delta p50/p99 (samples sent after the warm-up);
- peak RSS (VmHWM) of each process, and of the bench client;
- CPU time per message of each process (load and drain), the bench's own broker included,
  to see where the time went;
- where a tracked message's time went, hop by hop (tests/bench/e2e_hops.py): inbound
  appended, translated sent / readable, change sent / readable, readable over /fhir.

Paced below what the pipeline sustains, the rates through equal the offered rate and the
latencies are those of a steady flow; offered above it (e.g. --rate 150 --drain 0), the
rates through are the pipeline's capacity and the latencies only grow with the backlog.

Median of three runs (--runs). Defaults are the product's: projection batches of what has
arrived (at most 200 ms), sink batches of 1 s, as many workers as `carelog run` starts
(CARELOG_WORKER_PROCESSES, 2; --workers), one gateway process; reads are not audited (the
poller's reads would otherwise add AuditEvents to the load). Per process, the CPU it took and
the time its threads waited for a core (a full machine shows there, not in busy cores).

    .venv/bin/python -m tests.bench.bench_e2e [--rate 50] [--seconds 40] [--warmup 10] [--runs 3]
        [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import httpx
import orjson
import pyarrow.parquet as pq

from api.security.dev_token import mint_token
from infra.readers import log_ends
from processors.hl7v2.adapter import translate_hl7v2
from processors.ids import local_system, patient_id
from streams.admin import admin_client
from streams.settings import PROJECT_ROOT
from streams.settings.worker import WorkerSettings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED
from tests.bench.common import (
    RUNS,
    bench_settings,
    http_response,
    loop_seconds,
    main_thread_schedstat,
    process_tree,
    queued_seconds,
    tree_cpu_seconds,
    tree_queued_seconds,
)
from tests.bench.e2e_hops import HOPS, HopTracer
from tests.system.harness import COMPONENTS, SECRET, Process, System

SCOPES = "system/*.write system/hl7v2.write system/*.read"
EDGE = ("gateway", "mllp")  # the processes that acknowledge senders
CORPUS = PROJECT_ROOT / "tests/corpus/hl7v2_extra"
ADT_FILE = CORPUS / "adt_a28_add_person_v2.5.1.hl7"
ORU_FILE = PROJECT_ROOT / "tests/corpus/hl7v2/oru_r01_cbc_v2.5.1.hl7"
AUTHORITY = "NWH"  # PID-3.4 of both corpus messages
FHIR_SYSTEM = "urn:carelog:bench:e2e"
POLL_SECONDS = 0.1
POLL_WINDOW = 80  # samples asked for per poll, oldest first
VT, FS, CR = b"\x0b", b"\x1c", b"\r"


# -- messages ---------------------------------------------------------------------------------


def _corpus(path: Path) -> bytes:
    data = path.read_bytes().replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return data if data.endswith(b"\r") else data + b"\r"


ADT = _corpus(ADT_FILE)
ORU = _corpus(ORU_FILE)


def hl7_message(kind: int, mrn: str, control_id: str) -> bytes:
    """ADT^A28 (kind 0) or ORU^R01 (kind 1) of patient `mrn`; the ORU's order numbers are
    the control id, so every ORU makes a report and observations of its own."""
    if kind == 0:
        return ADT.replace(b"MRN7001", mrn.encode()).replace(b"NWH-MPI-2801", control_id.encode())
    return (
        ORU.replace(b"MRN5520", mrn.encode())
        .replace(b"NWH-LAB-7001", control_id.encode())
        .replace(b"ORD-90001", b"O" + control_id.encode())
        .replace(b"LAB-60001", b"F" + control_id.encode())
    )


def patient_json(pid: str) -> bytes:
    return orjson.dumps({"resourceType": "Patient", "id": pid, "gender": "unknown",
                         "identifier": [{"system": FHIR_SYSTEM, "value": pid}],
                         "name": [{"family": "Bench", "given": ["Http"]}],
                         "birthDate": "1970-01-01"})  # fmt: skip


def check_templates() -> None:
    """The Patient id the bench expects is the one the HL7 v2 mapping gives."""
    for kind in (0, 1):
        msg = hl7_message(kind, "MRNCHECK1", "CHECK-1")
        ids = [r.resource["id"] for r in translate_hl7v2(msg, "check").resources
               if r.resource["resourceType"] == "Patient"]  # fmt: skip
        assert ids == [patient_id(local_system(AUTHORITY), "MRNCHECK1")], ids


# -- processes --------------------------------------------------------------------------------


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set (VmHWM) of `pid` and its descendants, in kB (0 when gone)."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def broker_pid(bootstrap: str) -> int | None:
    """The bench's own broker (a java process with its folder, named by its port, on its
    command line), or None for a configured cluster."""
    marker = f"broker-{bootstrap.rsplit(':', 1)[-1]}/".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker in cmdline.read_bytes():
                return int(cmdline.parent.name)
        except OSError:
            continue
    return None


def by_component(system: System, measure: Callable[[int], float]) -> dict[str, float]:
    """`measure` of each process by its pid, the workers (worker, worker-2, ...) summed."""
    totals: dict[str, float] = {}
    for name, process in system.procs.items():
        component = "worker" if name.startswith("worker") else name
        totals[component] = totals.get(component, 0.0) + measure(_pid(process))
    return totals


def peak_rss_mb(system: System) -> dict[str, float]:
    return by_component(system, lambda pid: vm_hwm_kb(pid) / 1024)


def cpu_by_process(system: System) -> dict[str, float]:
    return by_component(system, tree_cpu_seconds)


def queued_by_process(system: System, broker: int | None) -> dict[str, float]:
    """Seconds each process (the broker and this bench too) has waited for a core so far."""
    queued = by_component(system, tree_queued_seconds)
    queued["bench"] = queued_seconds([os.getpid()])  # not its children: they are the above
    if broker is not None:
        queued["broker"] = tree_queued_seconds(broker)
    return queued


def worker_loops(system: System) -> tuple[float, float]:
    """Seconds the workers' event loops (each its main thread) have been on a core and
    waiting for one, summed: with the rest of the wall time idle (waiting on the broker),
    which of the three holds them back tells what would help."""
    loops = [main_thread_schedstat(_pid(p)) for n, p in system.procs.items()
             if n.startswith("worker")]  # fmt: skip
    return sum(running for running, _ in loops), sum(waiting for _, waiting in loops)


def _pid(process: Process) -> int:
    assert process.proc is not None, f"{process.name} was never started"
    return process.proc.pid


# -- the load ---------------------------------------------------------------------------------


@dataclass
class Tracked:
    pid: str  # the Patient the message creates
    sent: float  # wall-clock seconds (time.time), comparable with the Delta log's mtimes
    channel: str  # mllp | http | fhir
    acked: float | None = None
    readable: float | None = None
    in_lake: float | None = None


@dataclass
class Load:
    rate: float  # messages/s over all channels
    seconds: float
    connections: int
    sample_every: int
    warmup: float
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    acks: list[tuple[float, float, str]] = field(default_factory=list)  # (sent, acked, channel)
    samples: dict[str, Tracked] = field(default_factory=dict)  # by Patient id
    errors: list[str] = field(default_factory=list)
    started: float = 0.0

    def schedule(self, channel: int) -> Iterator[tuple[int, float]]:
        """(n, due wall time) of the messages of one channel (a third of the rate each)."""
        per_channel = self.rate / 3
        for n in itertools.count():
            due = self.started + n / per_channel
            if due >= self.started + self.seconds:
                return
            yield n, due

    def track(self, n: int, pid: str, sent: float, channel: str) -> Tracked | None:
        if n % self.sample_every:
            return None
        tracked = Tracked(pid, sent, channel)
        self.samples[pid] = tracked
        return tracked

    def mrn(self, channel: str, n: int) -> tuple[str, str]:
        """(MRN, control id) of message n of a channel; both unique to this run."""
        return f"B{self.run}{channel}{n:07d}", f"E{self.run}{channel}{n:07d}"


async def pace(due: float) -> None:
    delay = due - time.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def mllp_sender(load: Load, port: int, schedule: Iterator[tuple[int, float]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for n, due in schedule:
            await pace(due)
            mrn, control = load.mrn("M", n)
            msg = hl7_message(n % 2, mrn, control)
            sent = time.time()
            tracked = load.track(n, patient_id(local_system(AUTHORITY), mrn), sent, "mllp")
            writer.write(VT + msg + FS + CR)
            ack = await reader.readuntil(FS + CR)
            acked = time.time()
            if b"MSA|AA|" not in ack:
                load.errors.append(f"mllp: {ack[:200]!r}")
                continue
            load.acks.append((sent, acked, "mllp"))
            if tracked:
                tracked.acked = acked
    finally:
        writer.close()


async def http_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       head: bytes, body: bytes) -> tuple[bytes, bytes]:  # fmt: skip
    writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return await http_response(reader)


async def http_sender(load: Load, port: int, token: str, fhir: bool,
                      schedule: Iterator[tuple[int, float]]) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    auth = f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n".encode()
    try:
        for n, due in schedule:
            await pace(due)
            if fhir:
                pid = f"b{load.run}-{n}"
                head = (b"PUT /fhir/Patient/%s HTTP/1.1\r\n" % pid.encode() + auth
                        + b"Content-Type: application/fhir+json\r\nPrefer: respond-async\r\n")  # fmt: skip
                body, ok, channel = patient_json(pid), b"HTTP/1.1 20", "fhir"
            else:
                mrn, control = load.mrn("H", n)
                pid = patient_id(local_system(AUTHORITY), mrn)
                head = (b"POST /hl7v2 HTTP/1.1\r\n" + auth
                        + b"Content-Type: x-application/hl7-v2+er7\r\n")  # fmt: skip
                body, ok, channel = hl7_message(n % 2, mrn, control), b"HTTP/1.1 200", "http"
            sent = time.time()
            tracked = load.track(n, pid, sent, channel)
            status, answer = await http_request(reader, writer, head, body)
            acked = time.time()
            if not status.startswith(ok):
                load.errors.append(f"{channel}: {status!r} {answer[:200]!r}")
                continue
            load.acks.append((sent, acked, channel))
            if tracked:
                tracked.acked = acked
    finally:
        writer.close()


async def drive(load: Load, system: System, token: str) -> None:
    load.started = time.time() + 0.5
    senders = []
    for channel, kind in enumerate(("mllp", "http", "fhir")):
        schedule = load.schedule(channel)  # shared by the channel's connections
        for _ in range(load.connections):
            if kind == "mllp":
                senders.append(mllp_sender(load, system.mllp_port, schedule))
            else:
                senders.append(http_sender(load, system.gateway_port, token, kind == "fhir",
                                           schedule))  # fmt: skip
    await asyncio.gather(*senders)


# -- watching the FHIR store and Delta ----------------------------------------------------------


async def watch_fhir(load: Load, url: str, token: str, until: Callable[[], bool]) -> None:
    """Poll GET /fhir/Patient?_id=... for the samples not yet readable."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"},
                                 timeout=30) as client:  # fmt: skip
        while True:
            done = until()  # poll once more after the condition holds
            # The oldest pending samples only: the poller's cost stays bounded when a backlog
            # builds (a sample readable before older ones is seen when its turn comes).
            pending = [t.pid for t in list(load.samples.values()) if t.readable is None]
            pending = pending[:POLL_WINDOW]
            chunks = [pending[i : i + 40] for i in range(0, len(pending), 40)]

            async def ask(ids: list[str]) -> None:
                answer = await client.get("/fhir/Patient", params={
                    "_id": ",".join(ids), "_elements": "id", "_count": "1000",
                    "_total": "none"})  # fmt: skip
                now = time.time()
                if answer.status_code != 200:
                    load.errors.append(f"search: {answer.status_code} {answer.text[:200]}")
                    return
                for entry in answer.json().get("entry", []):
                    tracked = load.samples.get(entry["resource"]["id"])
                    if tracked and tracked.readable is None:
                        tracked.readable = now

            await asyncio.gather(*(ask(c) for c in chunks))
            if done:
                return
            await asyncio.sleep(POLL_SECONDS)


class DeltaLog:
    """Reads a Delta table's new commits as they appear: per commit, the ids its files add
    and when the commit became visible (the mtime of its log file)."""

    def __init__(self, table: Path) -> None:
        self.table, self.version = table, 0
        while (self.table / "_delta_log" / f"{self.version:020d}.json").exists():
            self.version += 1  # what is there already is not the load's

    def new_commits(self) -> Iterator[tuple[float, list[str]]]:
        while True:
            entry = self.table / "_delta_log" / f"{self.version:020d}.json"
            try:
                visible = entry.stat().st_mtime
                actions = [json.loads(line) for line in entry.read_text().splitlines() if line]
            except (OSError, ValueError):
                return  # not there yet (or being written: read it next round)
            ids: list[str] = []
            for action in actions:
                if "add" in action:
                    path = self.table / unquote(action["add"]["path"])
                    ids.extend(pq.read_table(path, columns=["id"]).column("id").to_pylist())
            self.version += 1
            yield visible, ids


async def watch_lake(
    load: Load, lake: Path, seen: dict[str, float], until: Callable[[], bool]
) -> None:
    """Every Patient id the silver table shows, with when it first appeared."""
    log = DeltaLog(lake / "silver" / "patient")
    while True:
        done = until()  # read once more after the condition holds
        for visible, ids in await asyncio.to_thread(lambda: list(log.new_commits())):
            for pid in ids:
                if pid not in seen:
                    seen[pid] = visible
                    tracked = load.samples.get(pid)
                    if tracked:
                        tracked.in_lake = visible
        if done:
            return
        await asyncio.sleep(POLL_SECONDS * 2)


async def count_store(url: str, token: str) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        answer = await client.get("/fhir/Patient", params={"_summary": "count"},
                                  headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        answer.raise_for_status()
        return int(answer.json()["total"])


async def store_counts(url: str, token: str, counts: list[tuple[float, int]],
                       until: Callable[[], bool]) -> None:  # fmt: skip
    while not until():
        counts.append((time.time(), await count_store(url, token)))
        await asyncio.sleep(1.0)
    counts.append((time.time(), await count_store(url, token)))


# -- one run ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def value_at(points: list[tuple[float, int]], t: float) -> float:
    """A counted series at time t (linear interpolation between its points)."""
    before = [p for p in points if p[0] <= t]
    after = [p for p in points if p[0] >= t]
    if not before or not after:
        return float("nan")
    (t0, c0), (t1, c1) = before[-1], after[0]
    return c0 if t1 == t0 else c0 + (c1 - c0) * (t - t0) / (t1 - t0)


def rate_between(points: list[tuple[float, int]], start: float, end: float) -> float:
    """Growth per second of a counted series between two times."""
    return (value_at(points, end) - value_at(points, start)) / (end - start)


def hop_figures(load: Load, tracer: HopTracer, warm: float) -> dict[str, float]:
    """p50 / p99 in ms of each hop (e2e_hops.py) over the samples sent after the warm-up."""
    out: dict[str, float] = {}
    for name, start, end in HOPS:
        spans = []
        for pid, t in load.samples.items():
            hops = tracer.hops.get(pid)
            if t.sent < warm or hops is None:
                continue
            times = {**vars(hops), "sent": t.sent, "readable": t.readable}
            if times[start] is not None and times[end] is not None:
                spans.append(times[end] - times[start])
        out[f"hop {name} p50"] = pct(spans, 0.5) * 1000
        out[f"hop {name} p99"] = pct(spans, 0.99) * 1000
    return out


async def measure(load: Load, system: System, token: str, drain: float) -> dict[str, float]:
    baseline = await count_store(system.gateway_url, token)
    lake_seen: dict[str, float] = {}
    counts: list[tuple[float, int]] = []
    state = {"sending": True, "deadline": 0.0}

    def all_through() -> bool:
        sent = len(load.acks)
        if state["sending"]:
            return False
        if time.time() > state["deadline"]:
            return True
        readable = counts[-1][1] - baseline if counts else 0
        return readable >= sent and len(lake_seen) >= sent

    watchers = [
        asyncio.create_task(watch_fhir(load, system.gateway_url, token, all_through)),
        asyncio.create_task(watch_lake(load, system.lake, lake_seen, all_through)),
        asyncio.create_task(store_counts(system.gateway_url, token, counts, all_through)),
    ]
    try:
        await drive(load, system, token)
    finally:
        state["sending"] = False
        state["deadline"] = time.time() + drain
    await asyncio.gather(*watchers)
    end = load.started + load.seconds
    warm = load.started + min(load.warmup, load.seconds / 2)
    acked = sorted(a for _, a, _ in load.acks)
    ack_points = [(t, i + 1) for i, t in enumerate(acked)]
    lake_points = [(t, i + 1) for i, t in enumerate(sorted(lake_seen.values()))]
    fhir_points = [(t, c - baseline) for t, c in counts]
    after = [t for t in load.samples.values() if t.sent >= warm and t.acked is not None]
    acks = [(load.started, 0), *ack_points, (end + 60, len(acked))]
    fhir = [(load.started, 0), *fhir_points]
    return {
        "acked/s": rate_between(acks, warm, end),
        "fhir/s": rate_between(fhir, warm, end),
        # Acknowledged but not yet readable: flat when the pipeline keeps up, growing when not.
        "backlog warm": value_at(acks, warm) - value_at(fhir, warm),
        "backlog end": value_at(acks, end) - value_at(fhir, end),
        "delta/s": rate_between(
            [(load.started, 0), *lake_points, (end + 600, len(lake_seen))], warm, end
        ),
        "ack p50": pct([a - s for s, a, _ in load.acks if s >= warm], 0.5) * 1000,
        "ack p99": pct([a - s for s, a, _ in load.acks if s >= warm], 0.99) * 1000,
        "fhir p50": pct([t.readable - t.sent for t in after if t.readable], 0.5),
        "fhir p99": pct([t.readable - t.sent for t in after if t.readable], 0.99),
        "delta p50": pct([t.in_lake - t.sent for t in after if t.in_lake], 0.5),
        "delta p99": pct([t.in_lake - t.sent for t in after if t.in_lake], 0.99),
        "sent": len(load.acks) + len(load.errors),
        "acked": len(acked),
        "errors": len(load.errors),
        "readable": (counts[-1][1] - baseline) if counts else 0,
        "in delta": len(lake_seen),
        "samples": len(after),
        "samples missing /fhir": sum(1 for t in after if t.readable is None),
        "samples missing delta": sum(1 for t in after if t.in_lake is None),
        # Over capacity, whether the worker drains one channel's inbound topic before another
        # (an HL7 v2 message costs it several times a FHIR PUT) shows here.
        **{f"readable {c}": _readable_share(after, c) for c in ("mllp", "http", "fhir")},
    }


def _readable_share(samples: list[Tracked], channel: str) -> float:
    mine = [t for t in samples if t.channel == channel]
    return sum(1 for t in mine if t.readable is not None) / max(1, len(mine))


async def prime(system: System, token: str, timeout: float = 180) -> None:
    """One FHIR PUT and one HL7 v2 message over each channel, through to the store and the
    silver table, so that the load meets processes that have joined their groups."""
    pid = f"prime-{uuid.uuid4().hex[:8]}"
    mrn = f"PRIME{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {token}"}
    table = system.lake / "silver" / "patient"
    lake = DeltaLog(table)
    async with httpx.AsyncClient(
        base_url=system.gateway_url, headers=headers, timeout=30
    ) as client:
        answer = await client.put(f"/fhir/Patient/{pid}", content=patient_json(pid),
                                  headers={"Content-Type": "application/fhir+json",
                                           "Prefer": "respond-async"})  # fmt: skip
        assert answer.status_code in (200, 201, 202), answer.text
        answer = await client.post("/hl7v2", content=hl7_message(1, mrn, f"P{mrn}"),
                                   headers={"Content-Type": "x-application/hl7-v2+er7"})  # fmt: skip
        assert answer.status_code == 200, answer.text
        reader, writer = await asyncio.open_connection("127.0.0.1", system.mllp_port)
        writer.write(VT + hl7_message(0, mrn + "M", f"P{mrn}M") + FS + CR)
        assert b"MSA|AA|" in await reader.readuntil(FS + CR)
        writer.close()
        wanted = {pid, patient_id(local_system(AUTHORITY), mrn),
                  patient_id(local_system(AUTHORITY), mrn + "M")}  # fmt: skip
        readable: set[str] = set()
        in_lake: set[str] = set()
        deadline = time.monotonic() + timeout
        while readable != wanted or in_lake != wanted:
            if time.monotonic() > deadline:
                raise RuntimeError(f"priming: readable {readable}, in Delta {in_lake} of {wanted}\n"
                                   + system.explain())  # fmt: skip
            answer = await client.get("/fhir/Patient", params={"_id": ",".join(wanted)})
            if answer.status_code == 200:
                readable = {e["resource"]["id"] for e in answer.json().get("entry", [])}
            for _, ids in lake.new_commits():
                in_lake |= wanted & set(ids)
            await asyncio.sleep(0.2)


def one_run(args: argparse.Namespace, token: str) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    try:
        with bench_settings() as settings:
            extra = dict(e.split("=", 1) for e in args.env)
            system = System(root, settings.kafka.bootstrap, tuned=False, workers=args.workers,
                            **extra)  # the defaults  # fmt: skip
            try:
                started = time.monotonic()
                system.start()
                asyncio.run(prime(system, token))
                print(f"  processes started and primed in {time.monotonic() - started:.0f}s; "
                      f"load {args.rate:g} msg/s for {args.seconds:g}s", flush=True)  # fmt: skip
                load = Load(args.rate, args.seconds, args.connections, args.sample_every,
                            args.warmup)  # fmt: skip
                # The hop tracer reads three topics as records commit: about 290 fetches a
                # second at 400 msg/s, a quarter of the broker's requests. Capacity runs
                # leave it out (--no-hops): the bench must not load what it measures.
                tracer = HopTracer(settings, lambda pid: pid in load.samples) if args.hops else None
                if tracer is not None:
                    tracer.start()
                broker = broker_pid(settings.kafka.bootstrap)
                broker_before = tree_cpu_seconds(broker) if broker else float("nan")
                loop_before = loop_seconds()  # the host's speed, the system idle
                cpu_before = cpu_by_process(system)
                queued_before = queued_by_process(system, broker)
                loops_before = worker_loops(system)
                # What the worker wrote (records and transaction markers): translation running
                # ahead of versioning shows here, not in its CPU.
                admin, outputs = admin_client(settings), [FHIR_TRANSLATED, FHIR_CHANGES]
                ends_before = log_ends(admin, outputs, timeout=15)
                # The load generator and the poller share the 2 cores with what they measure.
                bench_before, wall_before = time.process_time(), time.monotonic()
                try:
                    result = asyncio.run(measure(load, system, token, args.drain))
                finally:
                    if tracer is not None:
                        tracer.stop()
                result["cpu bench"] = time.process_time() - bench_before
                result["wall s"] = time.monotonic() - wall_before
                cpu_after = cpu_by_process(system)
                queued_after = queued_by_process(system, broker)
                result.update({f"queued {n}": queued_after[n] - queued_before[n]
                               for n in queued_before})  # fmt: skip
                loops_after = worker_loops(system)
                result["loops on a core"] = loops_after[0] - loops_before[0]
                result["loops waiting for a core"] = loops_after[1] - loops_before[1]
                ends_after = log_ends(admin, outputs, timeout=15)
                result["translated"] = ends_after[FHIR_TRANSLATED] - ends_before[FHIR_TRANSLATED]
                result["versioned"] = ends_after[FHIR_CHANGES] - ends_before[FHIR_CHANGES]
                result["loop s"] = loop_before
                # The broker serves every transaction the worker commits: its share counts too.
                result["cpu broker"] = (
                    tree_cpu_seconds(broker) if broker else float("nan")
                ) - broker_before
                warm = load.started + min(load.warmup, load.seconds / 2)
                if tracer is not None:
                    result.update(hop_figures(load, tracer, warm))
                result.update({f"cpu {n}": cpu_after[n] - cpu_before[n] for n in COMPONENTS})
                for name, proc in system.procs.items():
                    if not proc.running:
                        raise RuntimeError(f"{name} exited during the load\n{proc.tail()}")
                result.update({f"rss {n}": mb for n, mb in peak_rss_mb(system).items()})
                if load.errors:
                    print(f"  {len(load.errors)} errors, first: {load.errors[0]}", flush=True)
            finally:
                system.stop()
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


UNITS = {"acked/s": "msg/s", "fhir/s": "msg/s", "delta/s": "msg/s", "backlog warm": "msg",
         "backlog end": "msg", "ack p50": "ms",
         "ack p99": "ms", "fhir p50": "s", "fhir p99": "s", "delta p50": "s", "delta p99": "s"}  # fmt: skip
LABELS = {
    "acked/s": "acknowledged",
    "fhir/s": "through to the FHIR store (readable over /fhir)",
    "delta/s": "through to Delta (silver patient)",
    "backlog warm": "backlog (acked, not readable) after warm-up",
    "backlog end": "backlog (acked, not readable) at the end of load",
    "ack p50": "send -> ACK p50",
    "ack p99": "send -> ACK p99",
    "fhir p50": "send -> readable over /fhir p50",
    "fhir p99": "send -> readable over /fhir p99",
    "delta p50": "send -> visible in Delta p50",
    "delta p99": "send -> visible in Delta p99",
}


def show_run(result: dict[str, float]) -> None:
    print("  " + ", ".join(f"{k} {v:,.3g}" if isinstance(v, float) else f"{k} {v:,}"
                           for k, v in result.items()), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50.0, help="messages/s, all channels")
    parser.add_argument("--seconds", type=float, default=40.0, help="length of the load")
    parser.add_argument("--warmup", type=float, default=10.0, help="first seconds not counted")
    parser.add_argument("--connections", type=int, default=4, help="per channel")
    parser.add_argument("--sample-every", type=int, default=5)
    parser.add_argument("--drain", type=float, default=120.0,
                        help="after the load, wait at most this long for everything to land")  # fmt: skip
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--workers", type=int, default=WorkerSettings().processes,
                        help="worker processes (default: as many as `carelog run` starts)")  # fmt: skip
    parser.add_argument("--no-hops", dest="hops", action="store_false",
                        help="no per-hop reader (e2e_hops.py): for capacity runs")  # fmt: skip
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the carelog processes (e.g. CARELOG_KEY_STORE=off)",
    )
    args = parser.parse_args()
    check_templates()
    token = mint_token(SECRET, SCOPES, "bench-e2e", ttl=24 * 3600)
    print(f"end to end: {args.rate:g} msg/s offered (MLLP, HTTP HL7 v2, FHIR PUT a third each; "
          f"ADT^A28 / ORU^R01 alternately), {args.seconds:g}s per run, first {args.warmup:g}s "
          f"not counted, {args.connections} connections per channel, every "
          f"{args.sample_every}th message tracked; {args.workers} worker(s); median of {args.runs}; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    runs = []
    for n in range(args.runs):
        print(f"run {n + 1}:", flush=True)
        runs.append(one_run(args, token))
        show_run(runs[-1])
    print(f"load average at the end {os.getloadavg()[0]:.1f}; medians (runs):")
    for key, label in LABELS.items():
        values = [r[key] for r in runs]
        spread = ", ".join(f"{v:,.2f}" if UNITS[key] == "s" else f"{v:,.0f}" for v in values)
        med = statistics.median(values)
        shown = f"{med:,.2f}" if UNITS[key] == "s" else f"{med:,.0f}"
        print(f"  {label:<48} {shown:>10} {UNITS[key]:<6} ({spread})")
    if args.hops:
        print("  per hop (e2e_hops.py), p50 / p99 ms (runs' medians):")
    for name, _, _ in HOPS if args.hops else ():
        p50, p99 = (statistics.median(r[f"hop {name} {q}"] for r in runs) for q in ("p50", "p99"))
        print(f"    -> {name:<44} {p50:>8,.0f} / {p99:,.0f}")
    for name in [*COMPONENTS]:
        values = [r[f"rss {name}"] for r in runs]
        print(f"  peak RSS {name:<39} {statistics.median(values):>10,.0f} MB     "
              f"({', '.join(f'{v:,.0f}' for v in values)})")  # fmt: skip
    client = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS {'bench client (all runs)':<39} {client:>10,.0f} MB")
    for name in COMPONENTS:  # where the time went: a process starved of CPU shows little
        # The edge is charged per message it acknowledged, the rest per message they put
        # through to the store: with a growing backlog, dividing by acked would understate them.
        basis = "acked" if name in EDGE else "readable"
        values = [r[f"cpu {name}"] * 1000 / max(1, r[basis]) for r in runs]
        print(f"  CPU per {basis} message, {name:<23} {statistics.median(values):>10,.1f} ms     "
              f"({', '.join(f'{v:,.1f}' for v in values)})")  # fmt: skip
    values = [r["cpu broker"] * 1000 / max(1, r["readable"]) for r in runs]
    print(f"  CPU per readable message, broker (this bench's) {statistics.median(values):>8,.1f} ms     "
          f"({', '.join(f'{v:,.1f}' for v in values)})")  # fmt: skip
    # Capacity on a machine is its cores over the CPU a message costs in all processes: this
    # shows whether the load found the cores idle (a process waited on something) or full.
    values = [sum(r[f"cpu {n}"] for n in [*COMPONENTS, "broker", "bench"]) / r["wall s"]
              for r in runs]  # fmt: skip
    print(f"  cores busy during the load (all of the above + bench) {statistics.median(values):>4,.2f}"
          f"           ({', '.join(f'{v:,.2f}' for v in values)})")  # fmt: skip
    # Busy cores below 2 do not mean room to spare: threads wake in bursts and queue behind
    # each other. A stage that cannot batch (the worker) loses most by waiting its turn.
    for name in [*COMPONENTS, "broker", "bench"]:  # all their threads
        values = [r.get(f"queued {name}", float("nan")) / r["wall s"] for r in runs]
        print(f"  waiting for a core, {name:<28} {statistics.median(values):>10,.2f} s/s    "
              f"({', '.join(f'{v:,.2f}' for v in values)})")  # fmt: skip
    for what in ("on a core", "waiting for a core"):
        values = [r[f"loops {what}"] / r["wall s"] for r in runs]
        print(f"  the workers' event loops, {what:<23} {statistics.median(values):>10,.2f} s/s    "
              f"({', '.join(f'{v:,.2f}' for v in values)})")  # fmt: skip


if __name__ == "__main__":
    main()
