"""Faults survived, on the session's real broker with a load running: each component
SIGKILLed and restarted, poison messages, oversized messages, slow consumers. After each,
what senders were told is stored reconciles with carelog.inbound.*, carelog.fhir.changes,
the FHIR store and the Delta tables: no loss, no duplicate.

One system (five real processes) serves the whole module; each test tags its messages
with a prefix of its own and reconciles those.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from confluent_kafka import Message, Producer

from api.erasure.erase import ErasureReport, erase_patient
from schemas.events import Format, ResourceChanged, is_erased
from streams.event_codec import decode_event
from streams.log_scan import read_log
from streams.settings import Settings
from streams.settings.lake import LakeSettings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, REJECTED, inbound_topic
from tests.system.harness import (
    COMPONENTS,
    Load,
    Reconciler,
    System,
    a28,
    mllp_frame,
    read_frame,
    wait_until,
)

pytestmark = pytest.mark.kafka

MAX_BYTES = 200_000  # gateway bodies and MLLP frames above this are refused


@pytest.fixture(scope="module")
def system(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("faults")
    system = System(root, kafka_settings.kafka.bootstrap,
                    CARELOG_MAX_REQUEST_BYTES=str(MAX_BYTES),
                    CARELOG_MLLP_MAX_MESSAGE_BYTES=str(MAX_BYTES))  # fmt: skip
    try:
        system.start()
        yield system
    finally:
        system.stop()


@pytest.fixture(scope="module")
def reconciler(system: System) -> Iterator[Reconciler]:
    reconciler = Reconciler(system)
    yield reconciler
    reconciler.close()


def prefix(name: str) -> str:
    return f"{name}{uuid.uuid4().hex[:6]}"


@pytest.fixture
def load(system: System, request: pytest.FixtureRequest) -> Iterator[Load]:
    name = request.node.name.split("[")[-1].rstrip("]")[:8] if "[" in request.node.name else "t"
    load = Load(system, prefix(name.replace("_", "")))
    yield load
    load.stop()


def test_warm_pipeline(system: System, reconciler: Reconciler, load: Load) -> None:
    """The first messages through a freshly started system (the worker joins its group,
    the projection and the sink read the session's log so far)."""
    load.start()
    load.wait_acks(20)
    load.stop()
    report = reconciler.reconcile(load, timeout=150)
    print(report.line())
    assert report.acked >= 20


def test_the_sink_yields_the_cores_and_the_path_a_write_waits_for_does_not(
    system: System,
) -> None:
    """`CARELOG_LAKE_NICE` (5): on a machine short of cores the Delta sink runs after the
    processes a FHIR write waits for, which keep the niceness they were started with."""
    started_with = os.getpriority(os.PRIO_PROCESS, 0)
    nice = {n: os.getpriority(os.PRIO_PROCESS, p.proc.pid)
            for n, p in system.procs.items() if p.proc is not None}  # fmt: skip
    assert nice["sink"] == min(19, started_with + LakeSettings().nice), nice
    assert all(v == started_with for n, v in nice.items() if n != "sink"), nice


@pytest.mark.parametrize("component", COMPONENTS)
def test_sigkill_and_restart(
    system: System, reconciler: Reconciler, load: Load, component: str
) -> None:
    load.start()
    load.wait_acks(15)
    system.kill(component)
    started = time.monotonic()
    load.wait_acks(0)
    time.sleep(0.5)  # the load meets the dead process (refused connections, or lag)
    system.restart(component)
    restarted = time.monotonic() - started
    load.wait_acks(30, timeout=60)
    load.stop()
    report = reconciler.reconcile(load, timeout=90)
    print(f"{component} SIGKILLed, restarted {restarted:.1f}s later; {report.line()}; "
          f"answers {dict(load.answers)}")  # fmt: skip
    assert report.acked >= 45
    assert system.procs[component].starts == 2


def test_poison_messages_go_to_rejected_and_do_not_block(
    system: System, reconciler: Reconciler, load: Load
) -> None:
    # Bytes that are no event at all, on every partition of the HL7 v2 inbound topic...
    hl7_topic = inbound_topic("hl7v2")
    producer = Producer({"bootstrap.servers": system.bootstrap})
    partitions = sorted(p for t, p in system.start_positions if t == hl7_topic)
    poison = f"not an event {load.prefix}".encode()
    at: dict[int, int] = {}  # partition -> offset of its poison message

    def delivered(err: object, msg: Message) -> None:
        assert err is None, err
        at[msg.partition() or 0] = msg.offset() or 0

    for p in partitions:
        producer.produce(hl7_topic, value=poison, key=b"poison", partition=p, on_delivery=delivered)
    assert producer.flush(10) == 0 and sorted(at) == partitions
    # ...and a message the gateway takes (its frame is fine) that cannot be translated.
    untranslatable = f"{load.prefix}-bad"
    bad = a28(untranslatable).replace(f"PID|1||{untranslatable}^^^FAULTS^MR".encode(), b"PID|1||")
    answer = httpx.post(f"{system.gateway_url}/hl7v2", content=bad, headers={
        "Authorization": f"Bearer {system.token}", "Content-Type": "x-application/hl7-v2+er7"})  # fmt: skip
    assert answer.status_code == 200 and f"MSA|AA|{untranslatable}" in answer.text
    load.acked[untranslatable] = "http-hl7v2"
    load.sent[untranslatable] += 1

    load.start()  # good messages after the poison, until every poisoned partition has some

    def behind_poison() -> set[int]:
        reconciler.poll()
        places = [reconciler.inbound_at.get(e.event_id) for e in reconciler.inbound_events
                  if e.idempotency_key in load.acked]  # fmt: skip
        return {p for t, p, o in filter(None, places) if t == hl7_topic and o > at[p]}

    wait_until(lambda: behind_poison() == set(partitions), 60,
               lambda: f"acked after the poison on partitions {behind_poison()}")  # fmt: skip
    load.stop()
    report = reconciler.reconcile(load, timeout=90, not_through=[untranslatable])
    print(report.line())

    decode = [r for p, o, r in reconciler.rejected if r.original == poison]
    assert sorted(r.original_partition or 0 for r in decode) == partitions
    assert all(r.stage == "decode" for r in decode)
    [translate] = [r for _, _, r in reconciler.rejected
                   if r.stage == "translate" and r.original_event_id and untranslatable.encode() in
                   next((e.payload or b"" for e in reconciler.inbound_events
                         if e.event_id == r.original_event_id), b"")]  # fmt: skip
    assert "PID-3" in translate.reason
    # The store keeps the rejection too (FHIR writes answer from it).
    from projections.fhir_store import FhirStore

    with FhirStore.open(system.store_path, readonly=True) as store:
        wait_until(lambda: store.rejection_for_inbound(translate.original_event_id or "") is not None,
                   30, system.explain)  # fmt: skip


def test_oversized_messages_are_refused_with_a_reason(
    system: System, reconciler: Reconciler, load: Load
) -> None:
    load.start()
    big = "X" * (MAX_BYTES + 10_000)
    over = f"{load.prefix}-over"
    headers = {"Authorization": f"Bearer {system.token}",
               "Content-Type": "x-application/hl7-v2+er7"}  # fmt: skip
    # HTTP: 413 with the reason, as an HL7 ACK; a caller's refusal is not kept (README).
    answer = httpx.post(f"{system.gateway_url}/hl7v2", content=a28(over, big), headers=headers)
    assert answer.status_code == 413, answer.text
    assert "MSA|AR|" in answer.text and str(MAX_BYTES) in answer.text, answer.text

    # MLLP: AR naming the limit, and the refused frame's first bytes kept on carelog.rejected.
    with socket.create_connection(("127.0.0.1", system.mllp_port), 10) as sock:
        sock.settimeout(30)
        sock.sendall(mllp_frame(a28(f"{over}m", big)))
        ack = read_frame(sock).decode(errors="replace")
    assert "MSA|AR|" in ack and "ERR|" in ack, ack
    assert f"larger than the limit of {MAX_BYTES} bytes" in ack, ack

    # A big message under the limit goes through like any other.
    under = f"{load.prefix}-under"
    load.sent[under] += 1
    answer = httpx.post(f"{system.gateway_url}/hl7v2", content=a28(under, "Y" * (MAX_BYTES // 2)),
                        headers=headers)  # fmt: skip
    assert answer.status_code == 200 and f"MSA|AA|{under}" in answer.text, answer.text
    load.acked[under] = "http-hl7v2"
    load.wait_acks(30)
    load.stop()
    report = reconciler.reconcile(load, timeout=90, not_through=[over, f"{over}m"])
    print(report.line())
    assert under in load.acked and over not in load.acked and f"{over}m" not in load.acked

    kept = [r for _, _, r in reconciler.rejected if f"|{over}m|".encode() in r.original[:300]]
    assert len(kept) == 1, [r.reason for _, _, r in reconciler.rejected]
    assert "larger than the limit" in kept[0].reason
    assert kept[0].headers.get("original.size") == str(len(a28(f"{over}m", big)))
    assert not [r for _, _, r in reconciler.rejected if f"|{over}|".encode() in r.original[:300]]


def test_slow_consumers_catch_up(system: System, reconciler: Reconciler, load: Load) -> None:
    load.start()
    load.wait_acks(10)
    for name in ("projection", "sink"):
        system.procs[name].pause()
    try:
        load.wait_acks(60)
        stalled = set(load.acked)
        reconciler.poll()
        ids = {c[0].resource_id for c in reconciler.changes_of(load.prefix).values()}
        assert len(reconciler.store_versions(ids)) < len(ids), "the paused projection kept up?"
    finally:
        for name in ("projection", "sink"):
            system.procs[name].resume()
    load.wait_acks(20)
    load.stop()
    report = reconciler.reconcile(load, timeout=90)
    print(f"{len(stalled)} sent while the projection and the sink were paused; {report.line()}")
    assert all(system.procs[n].running for n in ("projection", "sink"))


def _patient_ids_holding(system: System, settings: Settings, text: str) -> set[str]:
    """Ids of the Patients on carelog.fhir.changes (since the system started) whose
    content holds `text`, as a reader with the keys sees them."""
    starts = {tp: o for tp, o in system.start_positions.items() if tp[0] == FHIR_CHANGES}
    return {
        e.resource_id
        for r in read_log(settings, [FHIR_CHANGES], starts=starts)
        if isinstance(e := decode_event(r.value), ResourceChanged)
        and e.resource_type == "Patient" and text in (e.resource or "")
    }  # fmt: skip


def test_erase_under_load_with_the_worker_and_projection_sigkilled_halfway(
    system: System, reconciler: Reconciler, load: Load, kafka_settings: Settings
) -> None:
    """Issue 16: a patient erased while the load runs, the worker and the projection
    SIGKILLed once the keys are shredded and restarted while the store and lake are purged.
    Afterwards nothing of the patient is readable (store, log), and the load lost nothing."""
    settings = kafka_settings.amended(store={"path": system.store_path}, lake={"uri": str(system.lake)})  # fmt: skip
    tag, mrn = prefix("erasee"), f"MRN{uuid.uuid4().hex[:12]}"
    message = a28(tag).replace(f"PID|1||{tag}^".encode(), f"PID|1||{mrn}^".encode())
    with httpx.Client(base_url=system.gateway_url, timeout=10) as client:
        answer = client.post("/hl7v2", content=message, headers={
            "Authorization": f"Bearer {system.token}",
            "Content-Type": "x-application/hl7-v2+er7"})  # fmt: skip
    assert f"MSA|AA|{tag}" in answer.text, answer.text
    found: set[str] = set()

    def landed() -> bool:
        found.update(_patient_ids_holding(system, settings, mrn))
        return bool(found) and bool(reconciler.store_versions(found))

    wait_until(landed, 60, system.explain)
    (pid,) = found
    load.start()
    load.wait_acks(10)
    shredded = threading.Event()
    done: list[ErasureReport] = []
    eraser = threading.Thread(target=lambda: done.append(erase_patient(
        settings, pid, "issue 16 under load", "faults",
        progress=lambda step: shredded.set() if step.startswith("shredded") else None)))  # fmt: skip
    eraser.start()
    assert shredded.wait(120), "the erasure did not reach its shred"
    system.kill("worker")
    system.kill("projection")
    system.restart("projection")
    system.restart("worker")
    eraser.join(180)
    assert done, "the erasure did not finish"
    report = done[0]
    load.wait_acks(20, timeout=90)
    load.stop()
    through = reconciler.reconcile(load, timeout=120)
    print(f"erased under load: {report.as_json()}; {through.line()}")
    assert report.keys_shredded >= 2  # the patient's key and its message's key
    assert f"Patient/{pid}" in report.resources and report.store["resources"] >= 1
    assert not reconciler.store_versions([pid])  # purged, and not brought back by a restart
    # The log keeps the events, unreadable: neither the MRN nor the content opens.
    assert not _patient_ids_holding(system, settings, mrn)
    topics = [inbound_topic(Format.hl7v2), FHIR_TRANSLATED, FHIR_CHANGES, REJECTED]
    starts = {tp: o for tp, o in system.start_positions.items() if tp[0] in topics}
    records = list(read_log(settings, topics, starts=starts))
    assert not [r.where for r in records if mrn.encode() in (r.key or b"") + r.value]
    theirs = [e for r in records if r.topic == FHIR_CHANGES
              and isinstance(e := decode_event(r.value), ResourceChanged) and e.resource_id == pid]  # fmt: skip
    assert theirs and all(is_erased(e) for e in theirs)
