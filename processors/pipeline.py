"""The two processing stages as plain functions over Kafka records; the Faust agents in
processors/worker.py only read, call these, and write what they return.

translate: InboundMessage -> ResourceTranslated events keyed ResourceType/id (or Rejected)
version:   ResourceTranslated + last state -> ResourceChanged (or nothing, or Rejected)
"""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from processors.canonical import canonical_json
from processors.ids import uuid5_text
from processors.lineage import Lineage
from processors.payloads import PayloadMissing, read_payload
from processors.translation import TranslationError
from processors.translators import translate_event
from processors.versioning import VersionRefused, VersionState, next_change
from schemas.errors import CodecError
from schemas.events import (
    InboundMessage,
    Operation,
    Rejected,
    ResourceTranslated,
    is_erased,
    utc_now,
)
from schemas.outcome import Issue, outcome_json, summary
from streams.event_codec import decode_event, encode_event, encode_sealed
from streams.privacy.envelope import key_shredded, shreds_seen
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, REJECTED

T = TypeVar("T")
TRANSLATED_NAMESPACE = uuid.UUID("0b7f5d0a-3f64-4a37-8d0e-6c4c1f9e2a11")


@dataclass(frozen=True, slots=True)
class Record:
    """A Kafka record as read: where it was, its key and value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass(frozen=True, slots=True)
class OutputRecord:
    topic: str
    key: bytes | None
    value: bytes


def rejection(
    record: Record,
    stage: str,
    issues: list[Issue],
    inbound: InboundMessage | None = None,
    *,
    original_event_id: str | None = None,
    correlation_id: str | None = None,
    sender: str | None = None,
) -> OutputRecord:
    event = Rejected(
        event_id=str(
            uuid.uuid5(
                TRANSLATED_NAMESPACE, f"{record.topic}|{record.partition}|{record.offset}|{stage}"
            )
        ),
        rejected_at=utc_now(),
        stage=stage,
        reason=summary(*issues),
        operation_outcome=outcome_json(*issues),
        original=record.value,
        format=inbound.format.value if inbound else None,
        content_type=inbound.content_type if inbound else None,
        sender=inbound.sender if inbound else sender,
        correlation_id=inbound.correlation_id if inbound else correlation_id,
        original_event_id=inbound.event_id if inbound else original_event_id,
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
        original_key=record.key,
        headers=dict(inbound.headers) if inbound else {},
    )
    return OutputRecord(REJECTED, record.key, encode_event(event))


def translate_record(record: Record) -> list[OutputRecord]:
    """One inbound record -> its translated resources, or one Rejected. Never raises for bad
    input: a poison message becomes a Rejected event and the partition moves on."""
    return _without_erasure_meanwhile(_translate_record, record)


def _without_erasure_meanwhile(compute: Callable[[Record], T], record: Record) -> T:
    """`compute(record)`, again if this process took a key shred while it ran: the input
    was opened with a key that may be gone since, and its patient's outputs may have been
    sealed with a new key of theirs (the old one shredded), out of reach of that erasure.
    Computed again, the input stays sealed (erased) or the outputs are the same."""
    while True:
        seen = shreds_seen()
        out = compute(record)
        if shreds_seen() == seen:
            return out


def _translate_record(record: Record) -> list[OutputRecord]:
    try:
        inbound = decode_event(record.value)
        if not isinstance(inbound, InboundMessage):
            raise CodecError(f"expected an InboundMessage, got {type(inbound).__name__}")
    except CodecError as exc:
        return [rejection(record, "decode", [Issue(str(exc), code="structure")])]
    if is_erased(inbound):  # its patient was erased (carelog erase): nothing left to translate
        return []
    try:
        payload = read_payload(inbound)
        translation = translate_event(inbound, payload)
    except TranslationError as exc:
        return [rejection(record, "translate", exc.issues, inbound)]
    except PayloadMissing as exc:
        return [rejection(record, "translate", [Issue(str(exc), code="not-found")], inbound)]
    except Exception as exc:  # a translator bug must not block the partition: keep it, move on
        detail = "".join(traceback.format_exception_only(exc)).strip()
        issue = Issue(
            f"internal error while translating: {detail}", code="exception", severity="fatal"
        )
        return [rejection(record, "translate", [issue], inbound)]

    outputs = []
    lineage = Lineage(
        inbound_event_id=inbound.event_id,
        inbound_topic=record.topic,
        inbound_partition=record.partition,
        inbound_offset=record.offset,
        mapping_version=translation.mapping_version,
        business_time=translation.business_time,
        warnings=outcome_json(*translation.warnings) if translation.warnings else None,
    )
    for index, item in enumerate(translation.resources):
        resource_type, resource_id = item.resource["resourceType"], item.resource["id"]
        event = ResourceTranslated(
            event_id=uuid5_text(TRANSLATED_NAMESPACE, f"{inbound.event_id}|{index}|{item.key}"),
            resource_type=resource_type,
            resource_id=resource_id,
            operation=Operation(item.operation),
            resource=canonical_json(item.resource) if item.operation == "upsert" else None,
            if_match=item.if_match,
            if_none_exist=item.if_none_exist,
            received_at=inbound.received_at,
            sender=inbound.sender,
            correlation_id=inbound.correlation_id,
            **lineage,
        )
        outputs.append(OutputRecord(FHIR_TRANSLATED, item.key.encode(), encode_event(event)))
    return outputs


def version_record(
    record: Record, previous: VersionState | None
) -> tuple[list[OutputRecord], VersionState | None]:
    """One translated resource -> its ResourceChanged (if the content changed) and new state."""
    return _without_erasure_meanwhile(lambda r: _version_record(r, previous), record)


def _version_record(
    record: Record, previous: VersionState | None
) -> tuple[list[OutputRecord], VersionState | None]:
    try:
        translated = decode_event(record.value)
        if not isinstance(translated, ResourceTranslated):
            raise CodecError(f"expected a ResourceTranslated, got {type(translated).__name__}")
    except CodecError as exc:
        return [rejection(record, "decode", [Issue(str(exc), code="structure")])], previous
    if is_erased(translated):
        return [], previous
    if previous is not None and previous.key_id is not None and key_shredded(previous.key_id):
        previous = previous.erased()
    try:
        change, state = next_change(translated, previous)
    except VersionRefused as exc:
        issue = Issue(str(exc), code=exc.code, location=translated.resource_type)
        out = rejection(
            record, "version", [issue], original_event_id=translated.inbound_event_id,
            correlation_id=translated.correlation_id, sender=translated.sender,
        )  # fmt: skip
        return [out], previous
    if change is None:
        return [], state
    value, key_id = encode_sealed(change)
    assert state is not None, "a change has the state after it"
    return [OutputRecord(FHIR_CHANGES, change.key.encode(), value)], state.sealed_with(key_id)
