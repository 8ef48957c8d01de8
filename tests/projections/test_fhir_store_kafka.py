"""The projection against the real broker: apply, exactly-once across SIGKILL, rebuild, verify."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.fhir.audit import audit_change
from api.fhir.audit_event import audit_event
from api.security.auth import Principal
from projections.fhir_store import FhirStore
from projections.fhir_store.rebuild import rebuild, verify
from projections.fhir_store.runner import TOPICS, consume
from streams.event_codec import encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import AUDIT, FHIR_CHANGES, REJECTED
from tests.projections.fhir_store_support import changed, rejected, uid

pytestmark = pytest.mark.kafka


def produce(settings: Settings, events: list) -> None:  # type: ignore[type-arg]
    outgoing = [
        Outgoing(FHIR_CHANGES if hasattr(e, "resource_type") else REJECTED,
                 getattr(e, "key", None) or e.original_event_id, encode_event(e))
        for e in events
    ]  # fmt: skip
    with EventProducer(settings) as producer:
        producer.send_many(outgoing)


def carelog(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args], cwd=PROJECT_ROOT, capture_output=True,
        text=True, timeout=timeout, env=os.environ.copy(),
    )  # fmt: skip


def test_projection_applies_changes_and_rejections(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    pid, inbound, bad = uid(), uid(), uid()
    produce(kafka_settings, [
        changed({"resourceType": "Patient", "id": pid, "name": [{"family": f"F{pid}"}]}, 1,
                inbound_event_id=inbound),
        changed({"resourceType": "Patient", "id": pid, "name": [{"family": f"G{pid}"}]}, 2),
        changed({"resourceType": "Observation", "id": f"o{pid}", "status": "final",
                 "code": {"text": "t"}, "subject": {"reference": f"Patient/{pid}"}}, 1),
        rejected(bad, "no such code"),
    ])  # fmt: skip
    store = FhirStore.open(tmp_path / "store.sqlite")
    consume(store, kafka_settings, caught_up=True)
    current = store.read("Patient", pid)
    assert current is not None and current.version == 2
    assert store.change_for_inbound(inbound) == [("Patient", pid, 1)]
    rejection = store.rejection_for_inbound(bad)
    assert rejection is not None and rejection.reason == "no such code"
    assert [
        m.id for m in store.search("Observation", [("subject:Patient.family", f"g{pid}")]).matches
    ] == [f"o{pid}"]
    assert {FHIR_CHANGES, REJECTED} <= {t for t, _ in store.applied_offsets()} <= set(TOPICS)
    # Started again, it resumes after its offsets: nothing applied twice.
    assert consume(store, kafka_settings, caught_up=True).versions == 0


def _our_versions(path: Path, prefix: str) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT r.id, v.version FROM versions v JOIN resources r ON r.rid = v.rid "
            "WHERE r.id LIKE ? ORDER BY r.id, v.version", (f"{prefix}%",),
        ).fetchall()  # fmt: skip
    except sqlite3.DatabaseError:  # not created yet
        return []
    finally:
        conn.close()


def test_exactly_once_across_sigkill(kafka_settings: Settings, tmp_path: Path) -> None:
    prefix = f"k{uid()}-"
    resources, versions = 2000, 10
    produce(kafka_settings, [
        changed({"resourceType": "Patient", "id": f"{prefix}{i}", "name": [{"family": f"v{v}"}]}, v)
        for v in range(1, versions + 1) for i in range(resources)
    ])  # fmt: skip
    path = tmp_path / "store.sqlite"
    env = {**os.environ, "CARELOG_FHIR_STORE_BATCH_MAX": "300", "CARELOG_FHIR_STORE_BATCH_MS": "50"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "projection", "run", "--store", str(path)],
        cwd=PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    total = resources * versions
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            applied = len(_our_versions(path, prefix))
            if 0 < applied < total:
                break
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: no chance to finish a batch or close
        proc.wait(30)
    before = len(_our_versions(path, prefix))
    assert 0 < before < total, f"the kill did not land mid-stream ({before} of {total})"
    assert (lock := path.with_name(path.name + ".lock")).exists()  # the lock died with it
    finished = carelog("projection", "run", "--store", str(path), "--until-caught-up")
    assert finished.returncode == 0, finished.stderr
    rows = _our_versions(path, prefix)
    expected = sorted((f"{prefix}{i}", v) for i in range(resources) for v in range(1, versions + 1))
    assert rows == expected  # every version exactly once: none lost, none twice
    with FhirStore.open(path, readonly=True) as store:
        current = store.read("Patient", f"{prefix}7")
        assert current is not None and current.version == versions
        assert (
            store.search("Patient", [("family:exact", f"v{versions}"), ("_id", f"{prefix}7")]).total
            == 1
        )
    assert lock.exists()


def test_rebuild_and_verify(kafka_settings: Settings, tmp_path: Path) -> None:
    pid = uid()
    produce(kafka_settings, [
        changed({"resourceType": "Patient", "id": pid, "gender": "female"}, 1),
        changed({"resourceType": "Patient", "id": pid, "gender": "male"}, 2),
        changed({"resourceType": "Patient", "id": pid}, 3, delete=True),
    ])  # fmt: skip
    path = tmp_path / "store.sqlite"
    built = carelog("projection", "run", "--store", str(path), "--until-caught-up")
    assert built.returncode == 0, built.stderr
    verified = carelog("projection", "verify", "--store", str(path))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("equal:")

    conn = sqlite3.connect(path)  # tamper with the live store
    conn.execute(
        "UPDATE versions SET json = '{}' WHERE version = 1 AND rid = "
        "(SELECT rid FROM resources WHERE type = 'Patient' AND id = ?)", (pid,)
    )  # fmt: skip
    conn.commit()
    conn.close()
    different = carelog("projection", "verify", "--store", str(path))
    assert different.returncode == 2
    assert (
        "DIFFERENT" in different.stdout and pid in different.stdout and "json" in different.stdout
    )

    rebuilt = carelog("projection", "rebuild", "--store", str(path))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert carelog("projection", "verify", "--store", str(path)).returncode == 0
    with FhirStore.open(path, readonly=True) as store:
        gone = store.read("Patient", pid)
        assert gone is not None and gone.deleted and gone.version == 3
        assert store.history("Patient", pid)[1] == 3


def test_audit_events_survive_a_rebuild(kafka_settings: Settings, tmp_path: Path) -> None:
    """AuditEvents come from carelog.audit (the gateway appends them there, not through the
    processors): folded with the changes, and the same after a rebuild from offset 0."""
    pid = uid()
    accesses = [str(uuid.uuid4()) for _ in range(3)]
    reader = Principal("rebuild-app", frozenset(), None)
    audits = [
        audit_change(audit_event(reader, "read", "10.0.0.9", [f"Patient/{pid}"], None), access,
                     datetime.now(UTC))
        for access in accesses
    ]  # fmt: skip
    produce(kafka_settings, [changed({"resourceType": "Patient", "id": pid}, 1)])
    with EventProducer(kafka_settings) as producer:
        producer.send_many([Outgoing(AUDIT, a.key, encode_event(a)) for a in audits])
    path = tmp_path / "store.sqlite"
    with FhirStore.open(path) as store:
        consume(store, kafka_settings, caught_up=True)

    def audited(path: Path) -> list[str | None]:
        with FhirStore.open(path, readonly=True) as store:
            found = [store.read("AuditEvent", access) for access in accesses]
            return [a.json if a is not None else None for a in found]

    before = audited(path)
    assert before == [a.resource for a in audits]
    rebuild(path, kafka_settings)
    assert audited(path) == before
    comparison = verify(path, kafka_settings)
    assert comparison.equal, comparison.differences
