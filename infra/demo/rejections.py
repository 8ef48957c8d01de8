"""Find the demo's deliberately bad messages on carelog.rejected.

The demo notes where carelog.rejected ends before it sends (`marks`), then reads from there
(read_committed: the processors write rejections in transactions) until each bad message's
rejection showed up. A rejection is matched by the bad message's tag, a string in its bytes:
the gateway keeps the refused bytes themselves, the processors the InboundMessage event that
holds them.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from infra.demo.outgoing import Outgoing
from schemas.errors import CodecError
from schemas.events import InboundMessage, Rejected
from streams.admin import admin_client
from streams.consumer import take_ready
from streams.event_codec import decode_event
from streams.kafka_config import reader_config
from streams.lag import partitions_of, watermarks
from streams.settings import Settings
from streams.topics import REJECTED


def _consumer(settings: Settings) -> Consumer:
    return Consumer(reader_config(settings, "demo"))


def marks(settings: Settings) -> dict[int, int]:
    """Where each partition of carelog.rejected ends now (its last stable offset)."""
    admin = admin_client(settings)
    ends = watermarks(admin, partitions_of(admin, [REJECTED]))
    if not ends:
        raise RuntimeError(f"{REJECTED} does not exist: run `carelog topics create`")
    return {partition: end for (_, partition), (_, end) in ends.items()}


def held_bytes(event: Rejected) -> bytes:
    """The bytes a rejection is about: the payload of the event it holds, or its original."""
    try:
        inner = decode_event(event.original)
    except CodecError:
        return event.original
    if isinstance(inner, InboundMessage) and inner.payload is not None:
        return inner.payload
    return event.original


def find_rejections(
    settings: Settings, since: dict[int, int], bad: list[Outgoing], timeout: float
) -> dict[str, Rejected]:
    """{tag: rejection} of the `bad` messages, as many as appear within `timeout` seconds."""
    wanted = {m.tag.encode(): m.tag for m in bad}
    found: dict[str, Rejected] = {}
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(REJECTED, p, o) for p, o in since.items()])
        deadline = time.monotonic() + timeout
        while len(found) < len(wanted) and time.monotonic() < deadline:
            for msg in take_ready(consumer, 500, 0.5):
                if msg.error() is not None:
                    continue
                try:
                    event = decode_event(msg.value() or b"")
                except CodecError:
                    continue
                if not isinstance(event, Rejected):
                    continue
                data = held_bytes(event)
                for needle, tag in wanted.items():
                    if tag not in found and needle in data:
                        found[tag] = event
    finally:
        consumer.close()
    return found
