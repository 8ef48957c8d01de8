"""Right to erasure against the real broker: PHI is sealed on every topic, `erase` shreds the
patient's keys and purges the FHIR store and the lake, and a rebuild from the log agrees."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pydicom
import pytest
from deltalake import DeltaTable
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from api.dicomweb.header import read_dicom_header
from api.erasure.erase import ErasureReport, erase_patient
from api.fhir.bulk_export_worker import run as export_job
from api.fhir.bulk_jobs import JobDirectory
from processors.ids import hl7v2_owner
from processors.pipeline import Record, translate_record, version_record
from processors.versioning import VersionState
from projections.fhir_store import FhirStore
from projections.fhir_store.rebuild import rebuild, verify
from projections.fhir_store.runner import consume
from projections.lake.sink import run_sink
from schemas.codec import AvroCodec
from schemas.events import (
    Channel,
    Format,
    InboundMessage,
    ResourceChanged,
    is_erased,
    new_event_id,
    utc_now,
)
from schemas.hl7v2.frame import read_er7
from schemas.hl7v2.patient import message_patient
from streams.blobstore import LocalBlobStore, blob_store_from_settings
from streams.event_codec import decode_event, encode_event
from streams.keys import hl7v2_key
from streams.log_scan import read_log
from streams.privacy import envelope
from streams.producer import EventProducer, Outgoing
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import AUDIT, FHIR_CHANGES, FHIR_TRANSLATED, KEYS, REJECTED, inbound_topic

pytestmark = pytest.mark.kafka

ALL_TOPICS = [*(inbound_topic(f) for f in Format), FHIR_TRANSLATED, FHIR_CHANGES, REJECTED, AUDIT,
              KEYS]  # fmt: skip


@dataclass(frozen=True)
class Person:
    mrn: str
    family: str

    def messages(self, tag: str) -> list[bytes]:
        pid = f"PID|1||{self.mrn}^^^NWH^MR||{self.family}^Ada^Y||19880217|F"
        adt = (f"MSH|^~\\&|REG|NWH|CARELOG|CARELOG|20261106071500||ADT^A04|{tag}-1|P|2.3\r"
               f"EVN|A04|20261106071500\r{pid}\rPV1|1|O|CLINIC2^^^NWH\r")  # fmt: skip
        oru = (f"MSH|^~\\&|LAB|NWH|CARELOG|CARELOG|20261106071500||ORU^R01^ORU_R01|{tag}-2|P|2.5.1\r"
               f"{pid}\rOBR|1|ORD-{tag}^CPOE|LAB-{tag}^LAB|58410-2^CBC panel^LN|||20261106060000"
               "||||||||||||||||||F\r"
               "OBX|1|NM|718-7^Hemoglobin^LN||13.9|g/dL^g/dL^UCUM|13.0-17.7|N|||F\r")  # fmt: skip
        return [adt.encode(), oru.encode()]

    def dicom(self, series: str = "CT") -> bytes:
        """A CT instance of this person (their name, MRN and issuer in its header)."""
        ds = pydicom.dcmread(str(get_testdata_file("CT_small.dcm")))
        ds.PatientID, ds.IssuerOfPatientID, ds.PatientName = self.mrn, "NWH", f"{self.family}^Ada"
        ds.SeriesDescription = series
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[self.mrn])  # a study of their own
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[self.mrn, series])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
            entropy_srcs=[self.mrn, series, "1"]
        )
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()


@dataclass
class World:
    settings: Settings
    store_path: Path
    erased: Person
    kept: Person
    killed: Person  # erased by a `carelog erase` SIGKILLed halfway, then run again
    patient_ids: dict[str, str]  # family name -> Patient id
    report: ErasureReport | None = None


def _send(producer: EventProducer, outs: list[Outgoing]) -> list[Record]:
    delivered = producer.send_many(outs)
    return [Record(d.topic, d.partition, d.offset, _bytes(o.key), o.value)
            for d, o in zip(delivered, outs, strict=True)]  # fmt: skip


def _bytes(key: bytes | str | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def _hl7v2(payload: bytes) -> Outgoing:
    """An HL7 v2 message as the edge appends it (sealed with its patient's key if known)."""
    event = InboundMessage.received(payload, channel=Channel.http, format=Format.hl7v2,
                                    content_type="x-application/hl7-v2+er7", sender="t")  # fmt: skip
    er7 = read_er7(payload)
    patient = message_patient(er7)
    sealed = encode_event(event, owner=hl7v2_owner(er7, patient))
    return Outgoing(inbound_topic(Format.hl7v2), hl7v2_key(er7, "t", patient), sealed)


def _by_reference(settings: Settings, data: bytes, fmt: Format, owner: str | None) -> Outgoing:
    """A payload kept in the blob store, its event holding the reference (as DICOMweb STOW
    does above its threshold)."""
    blob = blob_store_from_settings(settings).put(data)
    event = InboundMessage(
        event_id=new_event_id(), received_at=utc_now(), channel=Channel.http, format=fmt,
        content_type="application/dicom", sender="pacs", payload=None, payload_ref=blob.uri,
        payload_size=blob.size, sha256=blob.sha256,
    )  # fmt: skip
    return Outgoing(inbound_topic(fmt), event.event_id, encode_event(event, owner=owner))


def _run_pipeline(settings: Settings, people: list[Person]) -> list[ResourceChanged]:
    """The worker's two stages, in process, each output appended to its real topic; each
    message sealed as the edge seals it, once the one before is translated (so a returning
    patient's message is sealed with the patient's key). Each person's DICOM instance goes
    by reference to the blob store. The first person has a second one, whose blob a message
    tied to nobody refers to as well (the same file posted as FHIR: rejected)."""
    changes: list[ResourceChanged] = []
    states: dict[bytes | None, VersionState | None] = {}
    inbound: list[Callable[[], Outgoing]] = []  # sealed when sent, after the one before
    for person in people:
        inbound += [partial(_hl7v2, p) for p in person.messages(uuid.uuid4().hex[:8])]
        for data in [person.dicom(), *([person.dicom("shared")] if person is people[0] else [])]:
            owner = read_dicom_header(data).patient
            inbound.append(partial(_by_reference, settings, data, Format.dicom, owner))
    inbound.append(partial(_by_reference, settings, people[0].dicom("shared"), Format.fhir, None))
    with EventProducer(settings) as producer:
        for message in inbound:
            [record] = _send(producer, [message()])
            outs = translate_record(record)
            if record.topic == inbound_topic(Format.fhir):
                assert [o.topic for o in outs] == [REJECTED]
                _send(producer, [Outgoing(o.topic, o.key, o.value) for o in outs])
                continue
            assert all(o.topic == FHIR_TRANSLATED for o in outs), outs
            translated = _send(producer, [Outgoing(o.topic, o.key, o.value) for o in outs])
            for t in translated:
                versioned, states[t.key] = version_record(t, states.get(t.key))
                _send(producer, [Outgoing(v.topic, v.key, v.value) for v in versioned])
                changes += [e for v in versioned
                            if isinstance(e := decode_event(v.value), ResourceChanged)]  # fmt: skip
    return changes


@pytest.fixture(scope="module")
def world(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("erase")
    settings = kafka_settings.amended(store={"path": tmp / "store.sqlite"}, lake={"uri": str(tmp / "lake"), "group_id": f"erase-test-{uuid.uuid4()}"}, privacy={"key_refresh_seconds": 0.5}, notifier={"dir": tmp / "notifier"}, bulk_export={"dir": tmp / "bulk-export"})  # fmt: skip
    tag = uuid.uuid4().hex[:10]
    erased, kept = Person(f"MRNE{tag}", f"Erasmus{tag}"), Person(f"MRNK{tag}", f"Keeper{tag}")
    killed = Person(f"MRNX{tag}", f"Killian{tag}")
    changes = _run_pipeline(settings, [erased, kept, killed])
    ids = {}
    for change in changes:
        if change.resource_type == "Patient":
            for person in (erased, kept, killed):
                if person.family in (change.resource or ""):
                    ids[person.family] = change.resource_id
    assert set(ids) == {erased.family, kept.family, killed.family}
    for path in (settings.fhir_store_file, settings.notifier_state_dir / "store.sqlite"):
        with FhirStore.open(path) as store:  # the store, and the notifier's copy of it
            consume(store, settings, caught_up=True)
    run_sink(settings, caught_up=True)
    yield World(settings, settings.fhir_store_file, erased, kept, killed, ids)


def _raw_bytes(settings: Settings) -> list[bytes]:
    return [(r.key or b"") + r.value for r in read_log(settings, ALL_TOPICS)]


def _bronze_ids(world: World) -> set[str]:
    table = DeltaTable(f"{world.settings.lake.uri}/bronze/resource_changes")
    return set(table.to_pyarrow_table(columns=["resource_id"]).column("resource_id").to_pylist())


def test_phi_is_sealed_on_every_topic_yet_readable_with_its_key(world: World) -> None:
    raw = _raw_bytes(world.settings)
    for secret in (world.erased.family, world.erased.mrn, world.kept.family, world.kept.mrn):
        assert not [r for r in raw if secret.encode() in r], f"{secret} in clear on the log"
    opened = [decode_event(r.value) for r in read_log(world.settings, [FHIR_CHANGES])]
    assert any(world.erased.family in (getattr(e, "resource", None) or "") for e in opened)


def test_a_returning_patients_message_is_sealed_with_the_patients_key(world: World) -> None:
    """The ADT meets a new patient: a per-message key. The ORU after it is sealed with the
    key the worker made for that patient: no key record, and erasing the patient shreds it."""
    pid = world.patient_ids[world.erased.family]
    key_ids = {}
    for record in read_log(world.settings, [inbound_topic(Format.hl7v2)]):
        event = decode_event(record.value)
        if isinstance(event, InboundMessage) and world.erased.mrn.encode() in event.payload:
            key_ids[event.payload.split(b"|")[8]] = AvroCodec().decode(record.value)[1]["key_id"]
    assert key_ids[b"ADT^A04"].startswith("msg:")
    assert key_ids[b"ORU^R01^ORU_R01"].startswith(f"patient:{pid}/")


def test_erase_shreds_the_keys_and_purges_store_and_lake(world: World) -> None:
    pid = world.patient_ids[world.erased.family]
    assert pid in _bronze_ids(world)
    # An $export of the store, finished before the erasure and still served.
    jobs = JobDirectory(world.settings.bulk_export_root, expire_seconds=3600)
    job = jobs.create({"request_args": {"level": "system", "types": [], "max_per_file": 1000}})
    export_job(job.directory, world.store_path)
    exported = b"".join(p.read_bytes() for p in job.directory.glob("*.ndjson"))
    assert world.erased.family.encode() in exported
    # A replay shadow's store, started as a copy of the live one (infra/replay/run.py).
    shadow = world.settings.var_dir / "shadow" / f"erase-{uuid.uuid4().hex[:8]}.sqlite"
    shadow.parent.mkdir(parents=True, exist_ok=True)
    live, copy = sqlite3.connect(world.store_path), sqlite3.connect(shadow)
    live.backup(copy)
    live.close(), copy.close()
    # A reader keeps its connection open throughout, as the gateway does: the store's
    # write-ahead log then outlives the erasure's own connection.
    reader = FhirStore.open(world.store_path, readonly=True)
    assert reader.read("Patient", pid) is not None
    world.report = erase_patient(world.settings, pid, "GDPR art. 17 request #42", "dpo")
    report = world.report
    assert report.keys_shredded >= 2  # the patient's key (it sealed the ORU too), the ADT's
    assert report.log_events_unreadable[FHIR_CHANGES] >= 2  # Patient, Observation, ...
    assert f"Patient/{pid}" in report.resources
    assert report.store["resources"] >= 2 and report.store["versions"] >= 2
    assert report.lake.get("bronze/resource_changes", 0) >= 2
    with FhirStore.open(world.store_path) as store:
        assert store.read("Patient", pid) is None
        assert store.history("Patient", pid)[0] == []
        assert store.read("Patient", world.patient_ids[world.kept.family]) is not None
    assert pid not in _bronze_ids(world)
    assert world.patient_ids[world.kept.family] in _bronze_ids(world)
    # Nor in the store's file: its write-ahead log held the pages from before until emptied.
    store_bytes = b"".join(p.read_bytes() for p in world.store_path.parent.glob("store.sqlite*"))
    assert world.erased.family.encode() not in store_bytes
    assert world.erased.mrn.encode() not in store_bytes
    assert world.kept.family.encode() in store_bytes
    assert reader.read("Patient", pid) is None
    reader.close()
    assert report.notifier["resources"] >= 2
    assert report.exports["export_lines_removed"] >= 2  # the Patient, its Observation, ...
    assert report.shadows[shadow.stem]["resources"] >= 2
    with FhirStore.open(shadow, readonly=True) as copy_store:
        assert copy_store.read("Patient", pid) is None
    shadow.unlink()
    exported = b"".join(p.read_bytes() for p in job.directory.glob("*.ndjson"))
    assert world.erased.family.encode() not in exported
    assert world.kept.family.encode() in exported
    with FhirStore.open(world.settings.notifier_state_dir / "store.sqlite") as mirror:
        assert mirror.read("Patient", pid) is None
        assert mirror.read("Patient", world.patient_ids[world.kept.family]) is not None
    # The blob of the patient's DICOM instance is gone; the kept patient's stays, and so does
    # the erased patient's other one, which a message of nobody's refers to as well.
    blobs = blob_store_from_settings(world.settings)
    assert isinstance(blobs, LocalBlobStore)

    def kept(data: bytes) -> bool:
        return blobs.path_of(hashlib.sha256(data).hexdigest()).exists()

    assert report.blobs_removed == 1
    assert not kept(world.erased.dicom())
    assert kept(world.erased.dicom("shared")) and kept(world.kept.dicom())


def test_after_erasure_no_reader_can_open_the_patient_events(world: World) -> None:
    assert world.report is not None
    envelope.install(None)  # a process started afresh: reads carelog.keys from the start
    changes = [decode_event(r.value) for r in read_log(world.settings, [FHIR_CHANGES])]
    theirs = [e for e in changes if isinstance(e, ResourceChanged)
              and f"{e.resource_type}/{e.resource_id}" in world.report.resources]  # fmt: skip
    assert theirs and all(is_erased(e) and e.resource is None for e in theirs)
    inbound = [decode_event(r.value) for r in read_log(world.settings, [inbound_topic("hl7v2")])]
    readable = b"".join(e.payload or b"" for e in inbound if isinstance(e, InboundMessage))
    assert world.erased.mrn.encode() not in readable
    assert world.kept.mrn.encode() in readable


def test_a_rebuild_after_erasure_agrees_with_the_purged_store(world: World) -> None:
    assert world.report is not None
    with FhirStore.open(world.store_path) as store:
        consume(store, world.settings, caught_up=True)  # the erasure's own AuditEvent
    comparison = verify(world.store_path, world.settings)
    assert comparison.equal, comparison.differences
    rebuild(world.store_path, world.settings)
    with FhirStore.open(world.store_path) as store:
        assert store.read("Patient", world.patient_ids[world.erased.family]) is None
        assert store.read("Patient", world.patient_ids[world.kept.family]) is not None
        audit = store.read("AuditEvent", world.report.request_id)
    assert audit is not None
    assert world.erased.family not in audit.json and world.patient_ids[world.erased.family] \
        not in audit.json  # fmt: skip
    conn = sqlite3.connect(world.store_path)
    assert not conn.execute(
        "SELECT 1 FROM versions WHERE json LIKE ?", (f"%{world.erased.mrn}%",)
    ).fetchall()


def _carelog_erase(world: World, patient_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CARELOG_FHIR_STORE_PATH": str(world.store_path),
           "CARELOG_LAKE_URI": str(world.settings.lake.uri), "CARELOG_KEY_REFRESH_SECONDS": "3"}  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "erase", f"Patient/{patient_id}", "--reason", "test"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_an_erase_killed_halfway_is_finished_by_running_it_again(world: World) -> None:
    pid = world.patient_ids[world.killed.family]
    first = _carelog_erase(world, pid)
    assert first.stderr is not None
    line = first.stderr.readline()  # after the shred, before the store and the lake
    while line.startswith("%"):  # a log line of the Kafka client
        line = first.stderr.readline()
    assert "shredded" in line, line + first.stderr.read()
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    envelope.install(None)
    with FhirStore.open(world.store_path) as store:
        assert store.read("Patient", pid) is not None  # killed before the purge
    ours = [e for r in read_log(world.settings, [FHIR_CHANGES])
            if isinstance(e := decode_event(r.value), ResourceChanged) and e.resource_id == pid]  # fmt: skip
    assert ours and all(is_erased(e) for e in ours)  # ... yet the log is unreadable already
    second = _carelog_erase(world, pid)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    report = json.loads(out)
    assert report["keys_shredded"] == 0  # the first run shredded them all
    assert report["store"]["resources"] >= 2 and report["lake"]
    with FhirStore.open(world.store_path) as store:
        assert store.read("Patient", pid) is None
        assert store.read("Patient", world.patient_ids[world.kept.family]) is not None
    assert pid not in _bronze_ids(world)
