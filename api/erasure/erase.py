"""Erasing a patient from a log that keeps every byte: shred the keys, then the projections.

1. Find what is the patient's on the log: every change, translation and audit record sealed
   with a `patient:<id>` key, the inbound messages they came from and the rejections of those
   messages (their per-message keys). Reading needs no keys: ids and lineage are in clear.
2. Shred those keys (tombstones on carelog.keys). From then on no reader (FHIR store
   projection, lake sink, worker, `carelog tail`, a replay or a rebuild) can open the events.
3. Wait until every process has seen the shred (key_refresh_seconds), then delete the
   patient's resources, versions, index rows and rejections from the FHIR store and every
   copy of it (the notifier's, replay shadows'), the content of the notifications not yet
   delivered and of the $export files still served, their rows from every Delta table
   (delete, then the files that held them are removed). The blobs of their messages and
   attachments (DICOM instances, big documents) that no other message or resource refers to
   go before the shred (an attachment is found by opening its DocumentReference).
4. Append an AuditEvent naming the request (its id, the reason, who asked, the counts); the
   patient appears in it only as a SHA-256 of the reference, so it holds no PHI.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson

from api.fhir.audit import audit_change  # the one way an AuditEvent becomes a log record
from api.fhir.bulk_jobs import JobDirectory
from projections.fhir_store.erase import StoreErased, erase_from_store
from projections.lake.erase import erase_from_lake
from projections.notifier.state import State
from schemas.codec import AvroCodec
from schemas.errors import CodecError
from schemas.events import Format, Operation, ResourceChanged, new_event_id
from streams.blobstore import BlobStoreError, blob_schemes, blob_store_from_settings
from streams.event_codec import encode_event
from streams.log_scan import read_log
from streams.privacy.envelope import keystore, open_record
from streams.privacy.key_cache import forget_in_every_copy
from streams.producer import EventProducer
from streams.settings import Settings
from streams.topics import AUDIT, FHIR_CHANGES, FHIR_TRANSLATED, REJECTED, inbound_topic

_codec = AvroCodec()
RESOURCE_EVENTS = (FHIR_CHANGES, FHIR_TRANSLATED, AUDIT)


class ErasureError(RuntimeError):
    pass


@dataclass
class Found:
    """What of one patient the log holds."""

    patient_keys: list[str] = field(default_factory=list)
    message_keys: set[str] = field(default_factory=set)
    resources: set[tuple[str, str]] = field(default_factory=set)
    inbound_event_ids: set[str] = field(default_factory=set)
    events: dict[str, int] = field(default_factory=dict)  # per topic, sealed with those keys
    blobs: set[str] = field(default_factory=set)  # payloads and attachments of the patient's
    blobs_shared: set[str] = field(default_factory=set)  # ... those others refer to as well


@dataclass
class ErasureReport:
    request_id: str
    patient: str
    reason: str
    keys_shredded: int
    key_cache_files_cleared: int  # copies of carelog.keys on this host that held one
    log_events_unreadable: dict[str, int]
    resources: list[str]
    store: dict[str, int]
    lake: dict[str, int]
    lake_files_removed: int
    notifier: dict[str, int]
    exports: dict[str, int]
    shadows: dict[str, dict[str, int]]
    blobs_removed: int
    audit_event: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _records(settings: Settings, topics: Iterable[str]) -> Iterable[tuple[str, dict[str, Any]]]:
    for record in read_log(settings, topics):
        try:
            name, fields = _codec.decode(record.value, plain=True)
        except CodecError:
            continue
        yield record.topic, {"__name__": name, **fields}


def find(settings: Settings, patient_id: str) -> Found:
    """Everything on the log sealed for `patient_id`, and the messages it came from."""
    store = keystore()
    if store is None:
        raise ErasureError("key_store is off: events are in clear and nothing can be erased")
    prefix = f"patient:{patient_id}"
    found = Found(patient_keys=store.key_ids(prefix))
    keys = set(found.patient_keys)

    def counted(topic: str) -> None:
        found.events[topic] = found.events.get(topic, 0) + 1

    for topic, rec in _records(settings, RESOURCE_EVENTS):
        key_id = rec.get("key_id")
        if key_id is None or not (key_id == prefix or key_id.startswith(prefix + "/")):
            found.blobs_shared |= _attachment_blobs(rec)
            continue
        found.blobs |= _attachment_blobs(rec)
        keys.add(key_id)
        counted(topic)
        found.resources.add((rec["resource_type"], rec["resource_id"]))
        if rec["inbound_topic"] != AUDIT:
            found.inbound_event_ids.add(rec["inbound_event_id"])
    found.patient_keys = sorted(keys)
    inbound = [inbound_topic(f) for f in Format]
    for topic, rec in _records(settings, [*inbound, REJECTED]):
        if rec["__name__"] == "InboundMessage":
            hit = rec["event_id"] in found.inbound_event_ids
        else:
            hit = rec.get("original_event_id") in found.inbound_event_ids
        if hit and rec.get("key_id"):
            found.message_keys.add(rec["key_id"])
            counted(topic)
        if rec.get("payload_ref"):  # a DICOM instance, or any payload kept as a blob
            (found.blobs if hit else found.blobs_shared).add(rec["payload_ref"])
    return found


def _attachment_blobs(rec: dict[str, Any]) -> set[str]:
    """The blob URIs a DocumentReference's attachments point to (processors/attachment_blobs.py
    keeps big documents there); opened with its key, which is still there when `find` runs."""
    if rec.get("resource_type") != "DocumentReference":
        return set()
    opened = dict(rec)
    open_record(rec["__name__"], opened)
    if not opened.get("resource"):
        return set()
    resource = orjson.loads(opened["resource"])
    return {
        url
        for content in resource.get("content") or []
        if isinstance(url := (content.get("attachment") or {}).get("url"), str)
        and urlparse(url).scheme in blob_schemes()
    }


def erase_patient(
    settings: Settings,
    patient_id: str,
    reason: str,
    requested_by: str,
    *,
    progress: Callable[[str], None] = lambda _: None,
) -> ErasureReport:
    """Erase Patient/<patient_id> everywhere carelog keeps it; see the module docstring.

    Safe to run again after a crash at any step: the events found on the log keep their key
    ids in clear, so a second run finds the same resources and purges what is left."""
    request_id = new_event_id()
    found = find(settings, patient_id)
    store = keystore()
    assert store is not None
    # The blobs first: a DocumentReference's attachment is found by opening it, which the
    # shred makes impossible (a run again after a crash would no longer find them).
    blobs_removed = _erase_blobs(settings, found.blobs - found.blobs_shared)
    shredded = store.shred([*found.patient_keys, *sorted(found.message_keys)])
    key_copies = forget_in_every_copy(settings.key_cache_root, shredded)
    progress(f"shredded {len(shredded)} keys; purging the FHIR store and the lake")
    # Readers pick shreds up within key_refresh_seconds; a batch decoded just before may
    # still be applied, so wait that long again before deleting what it could have written.
    time.sleep(2 * settings.privacy.key_refresh_seconds)
    resources = set(found.resources) | {("Patient", patient_id)}
    in_store = _erase_store(settings, resources, found.inbound_event_ids)
    exports = JobDirectory(settings.bulk_export_root, settings.bulk_export.expire_seconds).erase(
        resources, before=time.time()
    )
    lake_rows, files_removed = erase_from_lake(settings, resources)
    notifier = _erase_notifier(settings, resources)
    shadows = {
        path.stem: asdict(_erase_sqlite(path, resources, found.inbound_event_ids))
        for path in sorted((settings.var_dir / "shadow").glob("*.sqlite"))
    }  # the stores of `carelog replay` shadows: copies of the state
    audit_id = _audit(settings, request_id, patient_id, reason, requested_by, len(shredded))
    return ErasureReport(
        request_id=request_id,
        patient=f"Patient/{patient_id}",
        reason=reason,
        keys_shredded=len(shredded),
        key_cache_files_cleared=key_copies,
        log_events_unreadable=dict(sorted(found.events.items())),
        resources=sorted(f"{t}/{i}" for t, i in resources),
        store=asdict(in_store),
        lake=lake_rows,
        lake_files_removed=files_removed,
        notifier=notifier,
        exports=exports,
        shadows=shadows,
        blobs_removed=blobs_removed,
        audit_event=f"AuditEvent/{audit_id}",
    )


def _erase_store(
    settings: Settings, resources: set[tuple[str, str]], inbound_ids: set[str]
) -> StoreErased:
    path = settings.fhir_store_file
    if not path.exists():
        return StoreErased(0, 0, 0)
    return _erase_sqlite(path, resources, inbound_ids)


def _erase_sqlite(
    path: Path, resources: set[tuple[str, str]], inbound_ids: set[str]
) -> StoreErased:
    """Erase from one FHIR store file (the store, or a copy of it)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=60)
    try:
        return erase_from_store(conn, resources, inbound_ids)
    finally:
        conn.close()


def _erase_notifier(settings: Settings, resources: set[tuple[str, str]]) -> dict[str, int]:
    """The notifier's copy of the FHIR store, and the content of its undelivered events."""
    erased: dict[str, int] = {}
    folder = settings.notifier_state_dir
    mirror = folder / "store.sqlite"
    if mirror.exists():
        in_mirror = _erase_sqlite(mirror, resources, set())
        erased.update(resources=in_mirror.resources, versions=in_mirror.versions)
    if (folder / "state.sqlite").exists():
        state = State(folder / "state.sqlite")
        try:
            erased["pending_events"] = state.erase_resources(resources)
        finally:
            state.close()
    return erased


def _erase_blobs(settings: Settings, uris: set[str]) -> int:
    store = blob_store_from_settings(settings)
    removed = 0
    for uri in sorted(uris):
        try:
            removed += store.delete(uri)
        except BlobStoreError as exc:  # e.g. a blob of another store (CARELOG_BLOB_URI changed)
            raise ErasureError(f"cannot remove the patient's blob {uri}: {exc}") from exc
    return removed


def _audit(
    settings: Settings,
    request_id: str,
    patient_id: str,
    reason: str,
    requested_by: str,
    keys: int,
) -> str:
    """The AuditEvent of the erasure: the request, not the person (a hash of the reference)."""

    digest = hashlib.sha256(f"Patient/{patient_id}".encode()).hexdigest()
    now = datetime.now(UTC)
    event: dict[str, object] = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106",
                 "display": "Export"},
        "subtype": [{"system": "urn:carelog:audit", "code": "erase",
                     "display": "Right to erasure: data keys shredded, projections purged"}],
        "action": "D",
        "recorded": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "outcome": "0",
        "purposeOfEvent": [{"text": reason[:1024]}],
        "agent": [{"who": {"identifier": {"system": "urn:carelog:operator",
                                           "value": requested_by}}, "requestor": True}],
        "source": {"observer": {"display": "carelog erase"}},
        "entity": [{
            "what": {"identifier": {"system": "urn:carelog:erasure-request", "value": request_id}},
            "description": f"sha256 of the erased reference: {digest}; {keys} keys shredded",
        }],
    }  # fmt: skip
    change: ResourceChanged = audit_change(event, request_id, now)
    assert change.operation is Operation.upsert
    with EventProducer(settings) as producer:
        producer.send(AUDIT, encode_event(change), change.key)
    return request_id
