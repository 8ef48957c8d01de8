"""The lineage of a resource version: from its change on the log back to the exact bytes.

change (carelog.fhir.changes) -> translated (carelog.fhir.translated) -> inbound record
(carelog.inbound.<format>) -> payload. A ResourceChanged names its inbound position; the
change itself is found by scanning carelog.fhir.changes for its key, from the time the
store says the version was recorded (its meta.lastUpdated is the inbound receive time, and a
record is never appended before that) when a store is at hand, else from the start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.history.redrive import REDRIVE_HEADER
from infra.render import safe_value
from processors.payloads import PayloadMissing, read_payload
from projections.fhir_store.store import FhirStore
from schemas.events import InboundMessage, ResourceChanged, ResourceTranslated
from streams.event_codec import decode_event
from streams.log_scan import CLOCK_SKEW_MS, LogRecord, read_events, read_one
from streams.settings import Settings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED

_REFERENCE = re.compile(r"^([A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/(\d+))?$")


class LineageError(ValueError):
    """The reference is malformed, or the log does not hold what it names."""


@dataclass(frozen=True, slots=True)
class Lineage:
    change: LogRecord
    changed: ResourceChanged
    translated: tuple[LogRecord, ResourceTranslated] | None
    inbound: LogRecord
    message: InboundMessage
    payload: bytes | None
    payload_error: str | None

    def to_json(self) -> dict[str, Any]:
        c, m = self.changed, self.message
        return {
            "resource": f"{c.key}/_history/{c.version}",
            "change": {"at": self.change.where, "event_id": c.event_id,
                       "operation": c.operation.value, "mapping_version": c.mapping_version,
                       "recorded_at": c.recorded_at.isoformat()},
            "translated": None if self.translated is None else {
                "at": self.translated[0].where, "event_id": self.translated[1].event_id},
            "inbound": {"at": self.inbound.where, "event_id": m.event_id, "sender": m.sender,
                        "channel": m.channel.value, "format": m.format.value,
                        "content_type": m.content_type, "correlation_id": m.correlation_id,
                        "received_at": m.received_at.isoformat(), "sha256": m.sha256,
                        "payload_ref": m.payload_ref,
                        "redrive_of": safe_value(self.inbound.headers.get(REDRIVE_HEADER))},
            "payload": safe_value(self.payload) if self.payload is not None else None,
            "payload_error": self.payload_error,
        }  # fmt: skip


def parse_reference(text: str) -> tuple[str, str, int | None]:
    match = _REFERENCE.match(text.strip().strip("/"))
    if match is None:
        raise LineageError(f"{text!r} is not ResourceType/id or ResourceType/id/_history/n")
    version = int(match[3]) if match[3] else None
    return match[1], match[2], version


def _since_ms(store_path: Path | None, rtype: str, rid: str, version: int | None) -> int | None:
    """When the version was received per the store (None: no store, or not in it)."""
    if store_path is None or not store_path.exists():
        return None
    with FhirStore.open(store_path, readonly=True) as store:
        found = store.vread(rtype, rid, version) if version else store.read(rtype, rid)
    if found is None:
        return None
    return int(found.last_updated.timestamp() * 1000) - CLOCK_SKEW_MS


def find_change(
    settings: Settings, rtype: str, rid: str, version: int | None, since_ms: int | None
) -> tuple[LogRecord, ResourceChanged]:
    best: tuple[LogRecord, ResourceChanged] | None = None
    key = f"{rtype}/{rid}".encode()
    for record, event in read_events(
        settings, [FHIR_CHANGES], ResourceChanged, key=key, since_ms=since_ms
    ):
        if version is not None and event.version == version:
            return record, event
        if version is None and (best is None or event.version > best[1].version):
            best = (record, event)
    if best is None:
        what = f"{rtype}/{rid}" + (f"/_history/{version}" if version else "")
        raise LineageError(f"{what} is not on {FHIR_CHANGES}")
    return best


def find_translated(
    settings: Settings, changed: ResourceChanged, since_ms: int
) -> tuple[LogRecord, ResourceTranslated] | None:
    for record, event in read_events(
        settings, [FHIR_TRANSLATED], ResourceTranslated, key=changed.key.encode(), since_ms=since_ms
    ):
        if event.inbound_event_id == changed.inbound_event_id:
            return record, event
    return None


def lineage(settings: Settings, reference: str, store_path: Path | None) -> Lineage:
    rtype, rid, version = parse_reference(reference)
    since_ms = _since_ms(store_path, rtype, rid, version)
    change, changed = find_change(settings, rtype, rid, version, since_ms)
    received_ms = int(changed.recorded_at.timestamp() * 1000) - CLOCK_SKEW_MS
    translated = find_translated(settings, changed, received_ms)
    inbound = read_one(
        settings, changed.inbound_topic, changed.inbound_partition, changed.inbound_offset
    )
    if inbound is None:
        raise LineageError(
            f"{changed.inbound_topic}[{changed.inbound_partition}]@{changed.inbound_offset} "
            "is no longer on the log"
        )
    message = decode_event(inbound.value)
    if not isinstance(message, InboundMessage):
        raise LineageError(f"{inbound.where} holds a {type(message).__name__}")
    try:
        payload, error = read_payload(message, attempts=1), None
    except PayloadMissing as exc:
        payload, error = None, str(exc)
    return Lineage(change, changed, translated, inbound, message, payload, error)
