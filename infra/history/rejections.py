"""The rejections on carelog.rejected: which ones, and what each holds.

A `Rejected` keeps the original bytes (the InboundMessage event for a processors' rejection,
the bytes the sender sent for a gateway one), the OperationOutcome, and where the original
was on the log.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from infra.render import safe_value
from schemas.errors import CodecError
from schemas.events import InboundMessage, Rejected, ResourceTranslated
from streams.event_codec import decode_event
from streams.log_scan import LogRecord, read_events
from streams.settings import Settings
from streams.topics import REJECTED


@dataclass(frozen=True, slots=True)
class Selection:
    """Which rejections: every field that is set must match."""

    ids: frozenset[str] = frozenset()
    stage: str | None = None
    sender: str | None = None
    reason: str | None = None  # a substring of the reason, case-insensitive
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, event: Rejected) -> bool:
        return (
            (not self.ids or event.event_id in self.ids)
            and (self.stage is None or event.stage == self.stage)
            and (self.sender is None or event.sender == self.sender)
            and (self.reason is None or self.reason.lower() in event.reason.lower())
            and (self.since is None or event.rejected_at >= self.since)
            and (self.until is None or event.rejected_at < self.until)
        )


@dataclass(frozen=True, slots=True)
class Found:
    """A rejection and where it is on carelog.rejected."""

    record: LogRecord
    event: Rejected


def rejections(settings: Settings, selection: Selection) -> Iterator[Found]:
    """The rejections on carelog.rejected that match, per partition in log order."""
    since_ms = int(selection.since.timestamp() * 1000) if selection.since else None
    for record, event in read_events(settings, [REJECTED], Rejected, since_ms=since_ms):
        if selection.matches(event):
            yield Found(record, event)


def held_event(event: Rejected) -> InboundMessage | ResourceTranslated | None:
    """The event a processors' rejection holds (None: the original is not an event)."""
    try:
        inner = decode_event(event.original)
    except CodecError:
        return None
    return inner if isinstance(inner, InboundMessage | ResourceTranslated) else None


def original_text(event: Rejected) -> Any:
    """The bytes the rejection is about, as text when they are text (else base64)."""
    inner = held_event(event)
    if isinstance(inner, InboundMessage) and inner.payload is not None:
        return safe_value(inner.payload)
    if isinstance(inner, InboundMessage):
        return {"payload_ref": inner.payload_ref}
    if isinstance(inner, ResourceTranslated):
        return inner.resource
    return safe_value(event.original)


def summary_row(found: Found) -> dict[str, Any]:
    e = found.event
    where = (
        f"{e.original_topic}[{e.original_partition}]@{e.original_offset}"
        if e.original_topic is not None
        else None
    )
    return {
        "id": e.event_id, "rejected_at": e.rejected_at.isoformat(), "stage": e.stage,
        "sender": e.sender, "format": e.format, "original": where, "reason": e.reason,
    }  # fmt: skip


def details(found: Found) -> dict[str, Any]:
    """Everything `carelog rejected show` prints."""
    e = found.event
    inner = held_event(e)
    return {
        **summary_row(found),
        "on": found.record.where,
        "correlation_id": e.correlation_id,
        "original_event_id": e.original_event_id,
        "content_type": e.content_type,
        "original_key": safe_value(e.original_key),
        "held": type(inner).__name__ if inner is not None else "bytes",
        "operation_outcome": orjson.loads(e.operation_outcome),
        "original_bytes": original_text(e),
    }
