"""A whole carelog on one machine for the fault tests: the real processes, a load, and a
reconciliation of what senders were told against every stage downstream.

- `System` starts `carelog gateway | mllp | worker | projection | sink` as subprocesses
  with a CARELOG_VAR_DIR of their own, free ports, a Faust app id (consumer group) and a
  lake consumer group of their own, so that a process killed here never stalls another test.
- `Load` sends FHIR PUTs and HL7 v2 ADT^A28 over HTTP and over MLLP from two threads and
  records every message acknowledged (202, AA). Each message creates one new Patient whose
  identifier (and HL7 MSH-10 / FHIR Idempotency-Key) is a tag unique to the test.
- `Reconciler` reads carelog.inbound.*, carelog.fhir.changes and carelog.rejected from the
  positions they had when the system started, the FHIR store and the Delta tables, waits
  until every acknowledged tag has gone all the way through, then checks one inbound event,
  one change (version 1), one store version and one Delta row per tag: no loss, no duplicate.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from deltalake import DeltaTable

from api.security.dev_token import mint_token
from infra.local_workers import local_workers
from projections.fhir_store import FhirStore, StoreError
from schemas.events import Format, InboundMessage, Rejected, ResourceChanged
from streams.consumer import take_ready
from streams.event_codec import decode_event
from streams.settings import PROJECT_ROOT
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, REJECTED, inbound_topic
from tests.kafka_fixture import free_port

SECRET = "system-test-secret-" + "s" * 40
SCOPES = "system/*.write system/hl7v2.write"
COMPONENTS = ("gateway", "mllp", "worker", "projection", "sink")
# Quicker than the defaults, so the fault tests stay short.
FAULT_TUNING = {
    # A killed worker's partitions move on after this long (the default is 60 s).
    "CARELOG_WORKER_SESSION_TIMEOUT_SECONDS": "8",
    "CARELOG_LAKE_BATCH_MAX_SECONDS": "0.3",
    "CARELOG_FHIR_STORE_BATCH_MS": "100",
    "CARELOG_GATEWAY_DELIVERY_TIMEOUT_MS": "3000",
}
VT, FS, CR = b"\x0b", b"\x1c", b"\r"
SYSTEM_MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
TAG_SYSTEM = "urn:carelog:test:faults"
# `info` shows the worker's rebalances and recovery with times, when a test needs a look.
WORKER_LOG_LEVEL = os.environ.get("CARELOG_TEST_WORKER_LOG_LEVEL", "info")
RUNNING: list[System] = []  # systems started and not stopped: their logs go with a failure


def wait_until(what: Callable[[], bool], timeout: float, explain: Callable[[], str],
               every: float = 0.2) -> None:  # fmt: skip
    """Poll `what` until it holds; past `timeout` fail with `explain()` (log tails)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if what():
            return
        time.sleep(every)
    if what():
        return
    raise AssertionError(f"timed out after {timeout:.0f}s\n{explain()}")


def gateway_ready(base: str) -> bool:
    """Whether the gateway at `base` (http://host:port) answers /readyz with 200."""
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# -- processes --------------------------------------------------------------------------------


class Process:
    """One carelog process: started, SIGKILLed, paused (SIGSTOP), resumed, stopped."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        assert not self.running, f"{self.name} runs already"
        with self.log.open("ab") as out:
            out.write(f"\n---- start #{self.starts + 1} of {self.name} ----\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv, cwd=PROJECT_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, no goodbye to the group coordinator."""
        self._signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(10)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self, timeout: float = 20.0) -> None:
        self.terminate()
        self.wait_stopped(timeout)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
            self.proc.terminate()

    def wait_stopped(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, chars: int = 2500) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        state = (
            "running" if self.running else f"exited {self.proc.returncode if self.proc else '-'}"
        )
        return f"==== {self.name} ({state}) {self.log} ====\n{text[-chars:]}"


# -- the system -------------------------------------------------------------------------------


def log_positions(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The high watermark of every partition of `topics` now."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"positions-{uuid.uuid4()}"})
    try:
        out: dict[tuple[str, int], int] = {}
        meta = consumer.list_topics(timeout=15)
        for topic in topics:
            for p in meta.topics[topic].partitions:
                deadline = time.monotonic() + 30
                while True:  # a fresh broker elects partition leaders a moment after creation
                    try:
                        _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), 15)
                        break
                    except KafkaException:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.2)
                out[(topic, p)] = high
        return out
    finally:
        consumer.close()


def commit_group_at(bootstrap: str, group: str, positions: dict[tuple[str, int], int]) -> None:
    """Start a fresh consumer group (the worker's) at `positions`, not at offset 0 of a log
    other tests have filled: the test's worker then processes what the test sends."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "enable.auto.commit": False})  # fmt: skip
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()


class System:
    """carelog's five processes on one broker, with state under `root`."""

    def __init__(
        self, root: Path, bootstrap: str, tuned: bool = True, workers: int = 1, **env: str
    ) -> None:
        """`tuned`: the quick settings the fault tests use (FAULT_TUNING); a benchmark runs
        with the defaults. `workers`: worker processes, named as `carelog run` names them
        (worker, worker-2, ...). `env`: more CARELOG_* settings."""
        self.root = root
        self.bootstrap = bootstrap
        self.run = uuid.uuid4().hex[:8]
        self.var_dir = root / "var"
        self.store_path = root / "fhir-store.sqlite"
        self.lake = root / "lake"
        self.gateway_port = free_port()
        self.mllp_port = free_port()
        self.app_id = f"carelog-processors-faults-{self.run}"
        self.lake_group = f"carelog-lake-sink-faults-{self.run}"
        self.env = {
            **os.environ,
            "CARELOG_KAFKA_BOOTSTRAP": bootstrap,
            "CARELOG_ENVIRONMENT": "test",
            "CARELOG_VAR_DIR": str(self.var_dir),
            "CARELOG_AUTH_HS256_SECRET": SECRET,
            "CARELOG_PROCESSORS_APP_ID": self.app_id,
            "CARELOG_LAKE_GROUP_ID": self.lake_group,
            # Static members, as `carelog run` makes them: a restart takes the partitions back.
            "CARELOG_WORKER_INSTANCE_ID": f"{self.app_id}-worker",
            "CARELOG_LAKE_INSTANCE_ID": f"{self.lake_group}-sink",
            "CARELOG_LAKE_URI": str(self.lake),
            "CARELOG_FHIR_STORE_PATH": str(self.store_path),
            "CARELOG_FHIR_AUDIT_READS": "false",
            "CARELOG_ACCESS_LOG": "false",
            "CARELOG_RATE_LIMIT_PER_SECOND": "0",
            # Metrics ports off: fixed defaults would meet other carelog processes here.
            "CARELOG_WORKER_METRICS_PORT": "0",
            "CARELOG_PROJECTION_METRICS_PORT": "0",
            "CARELOG_SINK_METRICS_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            # The processes seal and open events with keys on this broker's carelog.keys,
            # wrapped by one master key (the session's when kafka_settings set one).
            "CARELOG_KEY_STORE": "kafka",
            "CARELOG_MASTER_KEY": os.environ.get("CARELOG_MASTER_KEY") or SYSTEM_MASTER_KEY,
            **(FAULT_TUNING if tuned else {}),
            **env,
        }
        self.env.pop("CARELOG_AUTH_DISABLED", None)
        logs = root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.var_dir.mkdir(parents=True, exist_ok=True)
        cli = [sys.executable, "-m", "infra.cli"]
        argv = {
            "gateway": [*cli, "gateway", "--port", str(self.gateway_port)],
            "mllp": [*cli, "mllp", "--port", str(self.mllp_port), "--log-level", "WARNING"],
            "worker": [*cli, "worker", "--log-level", WORKER_LOG_LEVEL],
            "projection": [*cli, "projection"],
            "sink": [*cli, "sink"],
        }
        self.procs = {n: Process(n, argv[n], self.env, logs / f"{n}.log") for n in COMPONENTS}
        for worker in local_workers(workers, 0, self.env["CARELOG_WORKER_INSTANCE_ID"])[1:]:
            self.procs[worker.name] = Process(
                worker.name, argv["worker"], {**self.env, **worker.env}, logs / f"{worker.name}.log"
            )
        self.token = mint_token(SECRET, SCOPES, "faults-loadgen", ttl=3600)
        self.start_positions: dict[tuple[str, int], int] = {}

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start(self) -> None:
        topics = [*(inbound_topic(f) for f in Format), FHIR_TRANSLATED, FHIR_CHANGES, REJECTED]
        self.start_positions = log_positions(self.bootstrap, topics)
        worker_inputs = {tp: o for tp, o in self.start_positions.items()
                         if tp[0] not in (FHIR_CHANGES, REJECTED)}  # fmt: skip
        commit_group_at(self.bootstrap, self.app_id, worker_inputs)
        sink_inputs = {tp: o for tp, o in self.start_positions.items() if tp[0] == FHIR_CHANGES}
        commit_group_at(self.bootstrap, self.lake_group, sink_inputs)
        RUNNING.append(self)
        for proc in self.procs.values():
            proc.start()
        for name in self.procs:
            self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 60.0) -> None:
        """Until the process serves (gateway, MLLP) or has opened its output (projection, sink).
        The worker is ready when data flows: Reconciler waits for that."""
        checks: dict[str, Callable[[], bool]] = {
            "gateway": self._gateway_ready,
            "mllp": self._mllp_ready,
            "worker": lambda: True,
            "projection": self.store_path.exists,
            "sink": lambda: (self.lake / "bronze").exists(),
        }
        proc = self.procs[name]
        check = checks.get(name, checks["worker"])  # worker-2, ...

        def ready() -> bool:
            if not proc.running:
                raise AssertionError(f"{name} exited while starting\n{proc.tail()}")
            return check()

        wait_until(ready, timeout, proc.tail)

    def _gateway_ready(self) -> bool:
        return gateway_ready(self.gateway_url)

    def _mllp_ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.mllp_port), timeout=1):
                return True
        except OSError:
            return False

    def kill(self, name: str) -> None:
        self.procs[name].kill()

    def restart(self, name: str) -> None:
        proc = self.procs[name]
        if proc.running:
            proc.stop()
        proc.start()
        self.wait_ready(name)

    @contextmanager
    def supervised(self) -> Iterator[list[str]]:
        """Within the block, a process that exits is started again, as `carelog run` does;
        yields the names of those restarted, in order."""
        restarted: list[str] = []
        done = threading.Event()

        def watch() -> None:
            while not done.wait(0.5):
                for name, proc in self.procs.items():
                    if proc.proc is not None and not proc.running:
                        proc.start()
                        restarted.append(name)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            yield restarted
        finally:
            done.set()
            watcher.join(5)

    def stop(self) -> None:
        if self in RUNNING:
            RUNNING.remove(self)
        for proc in self.procs.values():
            proc.terminate()
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            proc.wait_stopped(max(0.1, deadline - time.monotonic()))

    def explain(self) -> str:
        return "\n".join(p.tail() for p in self.procs.values())


# -- the load ---------------------------------------------------------------------------------


def a28(tag: str, pad: str = "") -> bytes:
    """An ADT^A28 (add person): one Patient, identified by `tag` (also MSH-10)."""
    segments = [
        f"MSH|^~\\&|LOADGEN|FAULTS|CARELOG|CARELOG|20261020090000-0500||ADT^A28^ADT_A05|{tag}|P|2.5.1",
        "EVN|A28|20261020090000-0500",
        f"PID|1||{tag}^^^FAULTS^MR||Load^Test^M||20010915|F|||12 Elm St^^Madison^WI^53703^USA",
        "PV1|1|N",
    ]
    if pad:
        segments.append(f"ZPD|1|{pad}")  # a Z-segment: carried, ignored by the mapping
    return ("\r".join(segments) + "\r").encode()


def patient_json(tag: str) -> bytes:
    return orjson.dumps({"resourceType": "Patient", "id": tag, "gender": "unknown",
                         "identifier": [{"system": TAG_SYSTEM, "value": tag}],
                         "name": [{"family": "Load", "given": ["Http"]}]})  # fmt: skip


def mllp_frame(message: bytes) -> bytes:
    return VT + message + FS + CR


def read_frame(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(FS + CR):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("MLLP connection closed before the ACK")
        data += chunk
    return data.strip(VT).removesuffix(FS + CR)


@dataclass
class Load:
    """Senders over HTTP (FHIR PUT and HL7 v2, alternating) and MLLP, each in a thread,
    sending one message at a time. `acked` holds what senders were told is stored."""

    system: System
    prefix: str
    pause: float = 0.02
    acked: dict[str, str] = field(default_factory=dict)  # tag -> how it was sent
    sent: Counter[str] = field(default_factory=Counter)  # tag -> attempts
    answers: Counter[str] = field(default_factory=Counter)  # "http 503", "mllp AE", "mllp error"
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tag(self, kind: str) -> str:
        with self._lock:
            self._seq += 1
            return f"{self.prefix}-{kind}{self._seq}"

    def _note(self, tag: str, how: str, ok: bool, answer: str) -> None:
        with self._lock:
            self.answers[answer] += 1
            if ok:
                self.acked[tag] = how

    def start(self) -> Load:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._http, daemon=True),
                         threading.Thread(target=self._mllp, daemon=True)]  # fmt: skip
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def wait_acks(self, more: int, timeout: float = 60.0) -> None:
        target = self.acked_count() + more
        wait_until(lambda: self.acked_count() >= target, timeout,
                   lambda: f"answers {dict(self.answers)}\n{self.system.explain()}")  # fmt: skip

    # -- HTTP --------------------------------------------------------------------------------

    def send_http(self, client: httpx.Client, tag: str, hl7: bool) -> None:
        self.sent[tag] += 1
        headers = {"Authorization": f"Bearer {self.system.token}"}
        try:
            if hl7:
                answer = client.post("/hl7v2", content=a28(tag), headers={
                    **headers, "Content-Type": "x-application/hl7-v2+er7"})  # fmt: skip
                ok = answer.status_code == 200 and f"MSA|AA|{tag}" in answer.text
            else:
                answer = client.put(f"/fhir/Patient/{tag}", content=patient_json(tag), headers={
                    **headers, "Content-Type": "application/fhir+json", "Idempotency-Key": tag,
                    "Prefer": "respond-async"})  # fmt: skip
                ok = answer.status_code == 202 and bool(answer.headers.get("x-event-id"))
            self._note(tag, "http-hl7v2" if hl7 else "http-fhir", ok, f"http {answer.status_code}")
        except httpx.HTTPError as exc:
            self._note(tag, "", False, f"http {type(exc).__name__}")
            time.sleep(0.1)

    def _http(self) -> None:
        with httpx.Client(base_url=self.system.gateway_url, timeout=15) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                hl7 = n % 2 == 0
                self.send_http(client, self.tag("h" if hl7 else "f"), hl7)
                time.sleep(self.pause)

    # -- MLLP --------------------------------------------------------------------------------

    def _mllp(self) -> None:
        sock: socket.socket | None = None
        while not self._stop.is_set():
            tag = self.tag("m")
            self.sent[tag] += 1
            try:
                if sock is None:
                    sock = socket.create_connection(("127.0.0.1", self.system.mllp_port), 5)
                    sock.settimeout(15)
                sock.sendall(mllp_frame(a28(tag)))
                ack = read_frame(sock).decode(errors="replace")
                code = ack.split("MSA|", 1)[1][:2] if "MSA|" in ack else "??"
                self._note(tag, "mllp", code == "AA" and f"MSA|AA|{tag}" in ack, f"mllp {code}")
            except OSError as exc:
                self._note(tag, "", False, f"mllp {type(exc).__name__}")
                if sock is not None:
                    sock.close()
                sock = None
                time.sleep(0.1)
            time.sleep(self.pause)
        if sock is not None:
            sock.close()


# -- reading the log and the projections ------------------------------------------------------


class TopicReader:
    """Reads one topic (read_committed) from given offsets, a little more on each call."""

    def __init__(self, bootstrap: str, topic: str, start: dict[tuple[str, int], int]) -> None:
        self.topic = topic
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"faults-reader-{uuid.uuid4()}",
            "enable.auto.commit": False, "isolation.level": "read_committed", "log_level": 0,
            "enable.partition.eof": True,
        })  # fmt: skip
        self.partitions = {p for t, p in start if t == topic}
        self.consumer.assign([TopicPartition(topic, p, start[(topic, p)]) for p in self.partitions])
        self.at_end: set[int] = set()  # partitions whose last fetch reached the end

    def read(self, budget: float = 3.0) -> list[tuple[int, int, bytes]]:
        """What is new now: until every partition is at its end (or `budget` seconds). Callers
        poll again: an open transaction's records come once it commits (read_committed)."""
        out: list[tuple[int, int, bytes]] = []
        deadline = time.monotonic() + budget
        while time.monotonic() < deadline:
            # The end of every partition says when to stop: waiting for a read to come back
            # empty made each poll of the four topics take 2 s.
            batch = take_ready(self.consumer, 1000, 0.1)
            for msg in batch:
                part, off, err = msg.partition(), msg.offset(), msg.error()
                assert part is not None
                if err is not None:
                    assert err.code() == KafkaError._PARTITION_EOF, err
                    self.at_end.add(part)
                    continue
                assert off is not None
                self.at_end.discard(part)
                out.append((part, off, msg.value() or b""))
            if not batch and self.at_end >= self.partitions:
                break
        return out

    def close(self) -> None:
        self.consumer.close()


def tag_of(resource_json: str | None, prefix: str) -> str | None:
    if not resource_json:
        return None
    for ident in orjson.loads(resource_json).get("identifier", []):
        value = ident.get("value", "")
        if isinstance(value, str) and value.startswith(prefix):
            return value
    return None


@dataclass
class Change:
    tag: str
    resource_id: str
    version: int
    operation: str
    inbound_event_id: str | None


@dataclass
class Report:
    acked: int
    inbound: int
    changes: int
    store: int
    bronze: int
    silver: int
    seconds: float

    def line(self) -> str:
        return (f"acked {self.acked} -> inbound {self.inbound} -> fhir.changes {self.changes} "
                f"-> store {self.store} -> bronze {self.bronze} / silver {self.silver} "
                f"(reconciled in {self.seconds:.1f}s)")  # fmt: skip


class Reconciler:
    """Follows the system's topics from the positions they had when it started."""

    def __init__(self, system: System) -> None:
        self.system = system
        start = system.start_positions
        self.inbound = [TopicReader(system.bootstrap, inbound_topic(f), start)
                        for f in (Format.hl7v2, Format.fhir)]  # fmt: skip
        self.changes_reader = TopicReader(system.bootstrap, FHIR_CHANGES, start)
        self.rejected_reader = TopicReader(system.bootstrap, REJECTED, start)
        self.inbound_events: list[InboundMessage] = []
        self.inbound_at: dict[
            str, tuple[str, int, int]
        ] = {}  # event id -> topic, partition, offset
        self.changes: list[Change] = []
        self.rejected: list[tuple[int, int, Rejected]] = []

    def close(self) -> None:
        for reader in [*self.inbound, self.changes_reader, self.rejected_reader]:
            reader.close()

    def poll(self) -> None:
        for reader in self.inbound:
            for part, off, value in reader.read():
                try:
                    event = decode_event(value)
                except Exception:
                    continue  # a poison message a test put there on purpose
                if isinstance(event, InboundMessage):
                    self.inbound_events.append(event)
                    self.inbound_at[event.event_id] = (reader.topic, part, off)
        for _, _, value in self.changes_reader.read():
            change = decode_event(value)
            assert isinstance(change, ResourceChanged)
            if change.resource_type != "Patient":
                continue
            tag = tag_of(change.resource, "")
            if tag is None:
                continue
            self.changes.append(Change(tag, change.resource_id, change.version,
                                       change.operation.value, change.inbound_event_id))  # fmt: skip
        for p, off, value in self.rejected_reader.read():
            event = decode_event(value)
            assert isinstance(event, Rejected)
            self.rejected.append((p, off, event))

    # -- views over what was read --------------------------------------------------------------

    def inbound_tags(self, prefix: str) -> Counter[str]:
        return Counter(e.idempotency_key for e in self.inbound_events
                       if e.idempotency_key and e.idempotency_key.startswith(prefix))  # fmt: skip

    def changes_of(self, prefix: str) -> dict[str, list[Change]]:
        out: dict[str, list[Change]] = {}
        for change in self.changes:
            if change.tag.startswith(prefix):
                out.setdefault(change.tag, []).append(change)
        return out

    def store_versions(self, ids: Iterable[str]) -> dict[str, list[int]]:
        """Patient id -> versions the FHIR store holds (absent: not there yet)."""
        try:
            store = FhirStore.open(self.system.store_path, readonly=True)
        except StoreError:
            return {}
        try:
            out: dict[str, list[int]] = {}
            for rid in ids:
                versions, total = store.history("Patient", rid, count=10)
                if total:
                    out[rid] = [v.version for v in versions]
            return out
        finally:
            store.close()

    def lake_rows(self, ids: set[str]) -> tuple[Counter[tuple[str, int]], Counter[str]]:
        """(resource id, version) rows of bronze and id rows of silver/patient, for `ids`."""
        bronze: Counter[tuple[str, int]] = Counter()
        silver: Counter[str] = Counter()
        try:
            table = DeltaTable(str(self.system.lake / "bronze" / "resource_changes"))
            rows = table.to_pyarrow_table(columns=["resource_type", "resource_id", "version"],
                                          filters=[("resource_type", "=", "Patient")])  # fmt: skip
            rows = rows.filter(pc.is_in(rows["resource_id"], value_set=_array(ids)))
            bronze.update(zip(rows["resource_id"].to_pylist(), rows["version"].to_pylist(),
                              strict=True))  # fmt: skip
            patients = DeltaTable(str(self.system.lake / "silver" / "patient")).to_pyarrow_table(
                columns=["id"]
            )
            patients = patients.filter(pc.is_in(patients["id"], value_set=_array(ids)))
            silver.update(patients["id"].to_pylist())
        except Exception as exc:  # a table not created yet
            if "not a Delta table" not in str(exc) and "No files in log segment" not in str(exc):
                raise
        return bronze, silver

    # -- the check ---------------------------------------------------------------------------

    def reconcile(
        self, load: Load, timeout: float = 90.0, not_through: Iterable[str] = ()
    ) -> Report:
        """Wait until what senders were told is stored has reached the store and the lake,
        then check each stage holds it exactly once. `not_through`: tags expected to be
        refused downstream (they must not show up as changes)."""
        started = time.monotonic()
        prefix = load.prefix
        refused = set(not_through)
        state: dict[str, Any] = {}

        def through() -> bool:
            state.clear()
            self.poll()
            acked = set(load.acked)
            inbound = self.inbound_tags(prefix)
            changes = self.changes_of(prefix)
            state.update(acked=acked, inbound=inbound, changes=changes)
            if not acked <= set(inbound):
                return False
            if not set(inbound) - refused <= set(changes):
                return False  # the worker has not processed everything received
            ids = {c[0].resource_id for c in changes.values()}
            store = self.store_versions(ids)
            state["store"] = store
            if set(store) != ids:
                return False
            bronze, silver = self.lake_rows(ids)
            state.update(bronze=bronze, silver=silver)
            return {rid for rid, _ in bronze} == ids and set(silver) == ids

        def explain() -> str:
            acked, inbound, changes = (state.get(k, set()) for k in ("acked", "inbound", "changes"))
            ids = {c[0].resource_id for c in changes.values()} if changes else set()
            missing = {
                "acked, not inbound": sorted(set(acked) - set(inbound))[:5],
                "inbound, no change": sorted(set(inbound) - refused - set(changes))[:5],
                "not in store": len(ids - set(state.get("store", {}))),
                "not in bronze": len(ids - {r for r, _ in state.get("bronze", {})}),
                "not in silver": len(ids - set(state.get("silver", {}))),
            }
            return (f"acked {len(acked)}, inbound {len(inbound)}, changes {len(changes)}; "
                    f"{missing}; answers {dict(load.answers)}\n{self.system.explain()}")  # fmt: skip

        wait_until(through, timeout, explain, every=0.5)
        self.poll()  # anything that came after: a duplicate would show now
        acked, inbound = set(load.acked), self.inbound_tags(prefix)
        changes = self.changes_of(prefix)
        ids = {c[0].resource_id: tag for tag, c in changes.items()}
        store = self.store_versions(ids)
        bronze, silver = self.lake_rows(set(ids))

        # Inbound: each message once per time it was sent (a sender's retry may store it
        # again; nothing else may).
        over = {t: n for t, n in inbound.items() if n > max(1, load.sent[t])}
        assert not over, f"inbound events stored more often than sent: {over}"
        # fhir.changes: one change per message received, version 1, nothing for refused ones.
        assert not refused & set(changes), (
            f"refused messages made changes: {refused & set(changes)}"
        )
        dup = {
            t: [(c.resource_id, c.version) for c in cs] for t, cs in changes.items() if len(cs) > 1
        }
        assert not dup, f"duplicate changes: {dup}"
        assert set(changes) <= set(load.sent), "a change nobody sent"
        assert all(c[0].version == 1 and c[0].operation == "upsert" for c in changes.values())
        # The store: exactly that version; the lake: one bronze row and one silver row each.
        assert {rid: v for rid, v in store.items() if v != [1]} == {}, "store versions"
        assert set(store) == set(ids)
        assert {k: n for k, n in bronze.items() if n != 1 or k[1] != 1} == {}, "bronze duplicates"
        assert {rid for rid, _ in bronze} == set(ids)
        assert {k: n for k, n in silver.items() if n != 1} == {}, "silver duplicates"
        assert set(silver) == set(ids)
        return Report(len(acked), sum(inbound.values()), len(changes), len(store),
                      sum(bronze.values()), sum(silver.values()),
                      time.monotonic() - started)  # fmt: skip


def _array(values: Iterable[str]) -> Any:
    import pyarrow as pa

    return pa.array(sorted(values), pa.string())
