"""The events carelog keeps on Kafka, as immutable typed values.

Each class mirrors the current version of its schema in schemas/avro/. The one way to turn
them into bytes on the log and back is streams/event_codec.py (`encode_event`,
`decode_event`), which seals and opens their PHI fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar, dataclass_transform


class Channel(StrEnum):
    http = "http"
    mllp = "mllp"
    kafka = "kafka"
    file = "file"


class Format(StrEnum):
    hl7v2 = "hl7v2"
    fhir = "fhir"
    dicom = "dicom"
    device = "device"


class Operation(StrEnum):
    upsert = "upsert"
    delete = "delete"


_E = TypeVar("_E")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def event(cls: type[_E]) -> type[_E]:
    """An event class: immutable to the type checker (mypy refuses an assignment to a field),
    a plain slotted dataclass at run time. A frozen dataclass sets each field through
    object.__setattr__, about five times the cost of building the ~40 events an ORU^R01
    makes and reads (docs/figures.md)."""
    return dataclass(slots=True)(cls)


def new_event_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


@event
class InboundMessage:
    event_id: str
    received_at: datetime
    channel: Channel
    format: Format
    content_type: str
    sender: str
    payload_size: int
    sha256: str
    payload: bytes | None = None
    payload_ref: str | None = None
    idempotency_key: str | None = None
    correlation_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Both set only on an event read whose data key was shredded: it is erased (v2 fields;
    # streams/privacy/envelope.py seals and opens them).
    key_id: str | None = None
    sealed: bytes | None = None

    @classmethod
    def received(
        cls,
        payload: bytes,
        *,
        channel: Channel,
        format: Format,
        content_type: str,
        sender: str,
        idempotency_key: str | None = None,
        correlation_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> InboundMessage:
        """A new event holding `payload` exactly as received."""
        return cls(
            event_id=new_event_id(),
            received_at=utc_now(),
            channel=channel,
            format=format,
            content_type=content_type,
            sender=sender,
            payload=payload,
            payload_size=len(payload),
            sha256=hashlib.sha256(payload).hexdigest(),
            idempotency_key=idempotency_key,
            correlation_id=correlation_id,
            headers=headers or {},
        )


@event
class ResourceChanged:
    event_id: str
    resource_type: str
    resource_id: str
    version: int
    operation: Operation
    content_hash: str
    inbound_event_id: str
    inbound_topic: str
    inbound_partition: int
    inbound_offset: int
    recorded_at: datetime
    mapping_version: str
    resource: str | None = None
    business_time: datetime | None = None
    warnings: str | None = None  # OperationOutcome JSON: optional input dropped (v2)
    key_id: str | None = None  # (v3)
    sealed: bytes | None = None  # (v3)

    @property
    def key(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


@event
class Rejected:
    event_id: str
    rejected_at: datetime
    stage: str
    reason: str
    operation_outcome: str
    original: bytes
    format: str | None = None
    content_type: str | None = None
    sender: str | None = None
    correlation_id: str | None = None
    original_event_id: str | None = None
    original_topic: str | None = None
    original_partition: int | None = None
    original_offset: int | None = None
    original_key: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    key_id: str | None = None  # (v2)
    sealed: bytes | None = None  # (v2)


@event
class ResourceTranslated:
    event_id: str
    resource_type: str
    resource_id: str
    operation: Operation
    inbound_event_id: str
    inbound_topic: str
    inbound_partition: int
    inbound_offset: int
    received_at: datetime
    mapping_version: str
    resource: str | None = None
    if_match: int | None = None
    if_none_exist: bool = False
    business_time: datetime | None = None
    sender: str | None = None
    correlation_id: str | None = None
    warnings: str | None = None  # OperationOutcome JSON: optional input dropped (v3)
    key_id: str | None = None  # (v4)
    sealed: bytes | None = None  # (v4)

    @property
    def key(self) -> str:
        return f"{self.resource_type}/{self.resource_id}"


Event = InboundMessage | ResourceChanged | Rejected | ResourceTranslated

_CLASSES: dict[str, type[Event]] = {
    "InboundMessage": InboundMessage,
    "ResourceChanged": ResourceChanged,
    "Rejected": Rejected,
    "ResourceTranslated": ResourceTranslated,
}
# Enum-typed fields per record, with a symbol -> member map (a dict lookup is the fast path).
_ENUMS: dict[str, dict[str, dict[str, Any]]] = {
    "InboundMessage": {
        "channel": dict(Channel._value2member_map_),
        "format": dict(Format._value2member_map_),
    },
    "ResourceChanged": {"operation": dict(Operation._value2member_map_)},
    "Rejected": {},
    "ResourceTranslated": {"operation": dict(Operation._value2member_map_)},
}
_NAMES: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in _CLASSES.values()
}
_FIELDS: dict[str, frozenset[str]] = {
    name: frozenset(_NAMES[cls]) for name, cls in _CLASSES.items()
}


def to_record(event: Event) -> dict[str, Any]:
    """The Avro record of an event (StrEnum members are str, so they encode as symbols)."""
    return {name: getattr(event, name) for name in _NAMES[type(event)]}


def from_record(name: str, record: dict[str, Any]) -> Event:
    """The event of a record read with the current schema."""
    for key, members in _ENUMS[name].items():
        record[key] = members[record[key]]
    if record.keys() != _FIELDS[name]:
        # A record read with a newer schema than this code knows: keep the fields we model.
        record = {k: v for k, v in record.items() if k in _FIELDS[name]}
    return _CLASSES[name](**record)


def is_erased(event: Event) -> bool:
    """True when the event's PHI is sealed with a key that was shredded (`carelog erase`):
    its metadata is readable, its content is gone for good."""
    return event.sealed is not None
