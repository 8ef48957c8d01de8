"""Sending rejected originals back through the pipeline, once.

The original InboundMessage is appended to its inbound topic again, with the header
`carelog-redrive-of` naming the rejection(s) it answers, so the log keeps the trace. What
makes it idempotent:
- before sending, the inbound topics are scanned from the rejection's time on for that
  header: a rejection already re-driven is not sent again (`again=True` overrides);
- the re-sent event's id is derived from the rejected inbound event (UUIDv5), and the
  worker's translation is deterministic (resource ids from business identifiers), so even
  a forced second re-drive gives the same resources with the same content: the versioning
  stage's content hash turns them into no new version.

A version-stage rejection holds the ResourceTranslated; its InboundMessage is read from the
inbound position it names. Gateway and decode rejections hold no InboundMessage (the bytes
never became one, or are no event): they are reported, not sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from infra.history.rejections import Found, held_event
from schemas.errors import CodecError
from schemas.events import Format, InboundMessage, ResourceTranslated
from streams.event_codec import decode_event, encode_event
from streams.log_scan import CLOCK_SKEW_MS, read_log, read_one
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import inbound_topic

REDRIVE_HEADER = "carelog-redrive-of"
REDRIVE_NAMESPACE = uuid.UUID("8e1d7c52-40f4-4f5e-9b7a-2d0c6a9b5e37")
INBOUND_TOPICS = [inbound_topic(f) for f in Format]


@dataclass
class Plan:
    """One InboundMessage to send again, for the rejections it answers."""

    inbound: InboundMessage
    key: bytes | None
    rejected_ids: list[str]


@dataclass
class Outcome:
    sent: list[tuple[Plan, str]] = field(default_factory=list)  # (plan, where it went)
    already: dict[str, str] = field(default_factory=dict)  # rejected id -> where it was re-sent
    refused: dict[str, str] = field(default_factory=dict)  # rejected id -> why not


def redrive_event_id(inbound_event_id: str) -> str:
    return str(uuid.uuid5(REDRIVE_NAMESPACE, inbound_event_id))


def _inbound_of(settings: Settings, found: Found) -> tuple[InboundMessage, bytes | None] | str:
    """The InboundMessage behind a rejection and its key, or why there is none."""
    event = found.event
    inner = held_event(event)
    if isinstance(inner, InboundMessage):
        return inner, event.original_key
    if isinstance(inner, ResourceTranslated):
        record = read_one(
            settings, inner.inbound_topic, inner.inbound_partition, inner.inbound_offset
        )
        if record is None:
            return f"its inbound event {inner.inbound_topic}[{inner.inbound_partition}]@" \
                f"{inner.inbound_offset} is no longer on the log"  # fmt: skip
        try:
            inbound = decode_event(record.value)
        except CodecError as exc:
            return f"its inbound event does not decode: {exc}"
        if not isinstance(inbound, InboundMessage):
            return f"{record.where} holds a {type(inbound).__name__}, not an InboundMessage"
        return inbound, record.key
    return (f"a {event.stage}-stage rejection holds the bytes as sent, not an InboundMessage: "
            "the sender must send them again")  # fmt: skip


def plan(settings: Settings, found: Iterable[Found]) -> tuple[list[Plan], dict[str, str]]:
    """One Plan per rejected inbound event (several rejections of one event: one re-send)."""
    plans: dict[str, Plan] = {}
    refused: dict[str, str] = {}
    for item in found:
        got = _inbound_of(settings, item)
        if isinstance(got, str):
            refused[item.event.event_id] = got
            continue
        inbound, key = got
        if inbound.event_id in plans:
            plans[inbound.event_id].rejected_ids.append(item.event.event_id)
        else:
            plans[inbound.event_id] = Plan(inbound, key, [item.event.event_id])
    return list(plans.values()), refused


def marked_since(settings: Settings, header: str, since_ms: int) -> dict[str, str]:
    """{each value of `header` (comma-separated) on the inbound topics: where it is}, from
    records appended on or after `since_ms`."""
    found: dict[str, str] = {}
    for record in read_log(settings, INBOUND_TOPICS, since_ms=since_ms):
        marked = record.headers.get(header)
        if marked:
            for value in marked.decode().split(","):
                found.setdefault(value, record.where)
    return found


@dataclass(frozen=True, slots=True)
class Resend:
    """An InboundMessage to append again under a new event id, with a header saying why."""

    inbound: InboundMessage
    key: bytes | None
    event_id: str
    header: tuple[str, str]


def append_again(settings: Settings, items: list[Resend]) -> list[str]:
    """Append each to its inbound topic, in the order given; where each went."""
    outgoing = [
        Outgoing(
            inbound_topic(r.inbound.format),
            r.key,
            encode_event(replace(r.inbound, event_id=r.event_id)),
            headers=[("correlation-id", r.inbound.correlation_id or ""), r.header],
        )
        for r in items
    ]
    with EventProducer(settings) as producer:
        delivered = producer.send_many(outgoing)
    return [f"{d.topic}[{d.partition}]@{d.offset}" for d in delivered]


def redrive(settings: Settings, selected: list[Found], *, again: bool = False) -> Outcome:
    """Append the originals of `selected` to their inbound topics, each at most once."""
    plans, refused = plan(settings, selected)
    outcome = Outcome(refused=refused)
    if not again and plans:
        earliest = min(f.record.timestamp_ms for f in selected) - CLOCK_SKEW_MS
        marked = marked_since(settings, REDRIVE_HEADER, earliest)
        outcome.already = {i: marked[i] for p in plans for i in p.rejected_ids if i in marked}
        plans = [p for p in plans if not any(i in outcome.already for i in p.rejected_ids)]
    if not plans:
        return outcome
    where = append_again(settings, [
        Resend(p.inbound, p.key, redrive_event_id(p.inbound.event_id),
               (REDRIVE_HEADER, ",".join(p.rejected_ids)))
        for p in plans
    ])  # fmt: skip
    outcome.sent = list(zip(plans, where, strict=True))
    return outcome
