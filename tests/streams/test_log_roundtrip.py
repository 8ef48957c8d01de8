"""The log keeps every event: published with confirmation, read back decoded, in order per key."""

from __future__ import annotations

import contextlib
import uuid
from collections import defaultdict

import pytest
from confluent_kafka import Message

from schemas.events import Channel, Format, InboundMessage
from streams.admin import apply_catalogue
from streams.consumer import EventConsumer
from streams.event_codec import decode_event, encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import Topic

pytestmark = pytest.mark.kafka

COUNT = 10_000
KEYS = 50


def _fresh_topic(settings: Settings) -> str:
    name = f"test.log.{uuid.uuid4().hex[:8]}"
    apply_catalogue(
        [Topic(name, "test key", "InboundMessage", 6, 1, 1, {"retention.ms": "-1"})], settings
    )
    return name


def test_ten_thousand_events_read_back_in_order_per_key_none_lost(kafka_settings: Settings) -> None:
    topic = _fresh_topic(kafka_settings)
    sent: dict[str, list[str]] = defaultdict(list)
    outgoing = []
    for i in range(COUNT):
        key = f"NWH|MRN{i % KEYS}"
        payload = (
            f"MSH|^~\\&|LAB|NWH|||2026||ORU^R01|{i}|P|2.5.1\r".encode() + bytes(range(256)) * 7
        )
        event = InboundMessage.received(
            payload, channel=Channel.kafka, format=Format.hl7v2,
            content_type="x-application/hl7-v2+er7", sender="test", idempotency_key=str(i),
        )  # fmt: skip
        sent[key].append(event.event_id)
        outgoing.append(Outgoing(topic, key, encode_event(event)))

    with EventProducer(kafka_settings) as producer:
        delivered = producer.send_many(outgoing)
    assert len(delivered) == COUNT
    assert len({(d.partition, d.offset) for d in delivered}) == COUNT

    received: dict[str, list[str]] = defaultdict(list)
    payloads_ok = 0

    def handle(msg: Message) -> None:
        nonlocal payloads_ok
        event = decode_event(msg.value())
        assert isinstance(event, InboundMessage)
        received[msg.key().decode()].append(event.event_id)
        payloads_ok += event.payload is not None and event.payload.endswith(bytes(range(256)))

    with EventConsumer(f"test-{topic}", [topic], kafka_settings) as consumer:
        consumer.run(handle, max_messages=COUNT, idle_timeout=30)

    assert payloads_ok == COUNT
    assert received == sent  # every key: all events, none twice, in the order sent


def test_offsets_are_committed_only_for_handled_events(kafka_settings: Settings) -> None:
    topic = _fresh_topic(kafka_settings)
    values = [f"event-{i}".encode() for i in range(10)]
    with EventProducer(kafka_settings) as producer:
        producer.send_many(Outgoing(topic, "same-key", v) for v in values)

    group = f"test-{topic}"
    seen: list[bytes] = []

    # The first consumer handles five events, then "crashes" while handling the sixth.
    class Crash(Exception):
        pass

    def crash_on_sixth(msg: Message) -> None:
        if len(seen) == 5:
            raise Crash
        seen.append(msg.value())

    consumer = EventConsumer(group, [topic], kafka_settings)
    with contextlib.suppress(Crash):
        consumer.run(crash_on_sixth, idle_timeout=20)
    consumer.close()

    with EventConsumer(group, [topic], kafka_settings) as again:
        again.run(lambda m: seen.append(m.value()), max_messages=5, idle_timeout=20)
    assert seen == values
