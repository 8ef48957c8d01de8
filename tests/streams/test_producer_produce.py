"""EventProducer.produce: the callback path of the gateway and MLLP hot paths. `then` runs
once per event, on the delivery thread, only after the broker confirmed (or gave up)."""

from __future__ import annotations

import threading
import uuid

import pytest

from schemas.events import Channel, Format, InboundMessage
from streams.admin import apply_catalogue
from streams.consumer import EventConsumer
from streams.errors import DeliveryFailed
from streams.event_codec import encode_event
from streams.producer import Delivered, EventProducer, Outgoing
from streams.settings import Settings
from streams.settings.kafka import KafkaSettings
from streams.topics import Topic
from tests.kafka_fixture import free_port


def _outcomes(producer: EventProducer, events: list[Outgoing], timeout: float) -> list[object]:
    outcomes: list[object] = []
    threads: set[int] = set()
    done = threading.Event()

    def then(outcome: Delivered | DeliveryFailed) -> None:
        outcomes.append(outcome)
        threads.add(threading.get_ident())
        if len(outcomes) == len(events):
            done.set()

    for out in events:
        producer.produce(out, then)
    assert done.wait(timeout), f"{len(outcomes)} of {len(events)} outcomes"
    assert threading.get_ident() not in threads  # the delivery thread, not the caller's
    return outcomes


@pytest.mark.kafka
def test_each_event_is_reported_once_where_the_broker_put_it(kafka_settings: Settings) -> None:
    topic = f"test.produce.{uuid.uuid4().hex[:8]}"
    apply_catalogue([Topic(topic, "k", "InboundMessage", 3, 1, 1, {})], kafka_settings)
    payloads = [f"MSH|^~\\&|A|B|||2026||ADT^A01|{i}|P|2.5\r".encode() for i in range(50)]
    events = [
        Outgoing(topic, f"k{i % 5}", encode_event(InboundMessage.received(
            p, channel=Channel.http, format=Format.hl7v2, content_type="text/plain", sender="s")))
        for i, p in enumerate(payloads)
    ]  # fmt: skip
    with EventProducer(kafka_settings) as producer:
        outcomes = _outcomes(producer, events, 30)
    assert all(isinstance(o, Delivered) and o.topic == topic for o in outcomes)
    on_log = {(o.partition, o.offset) for o in outcomes if isinstance(o, Delivered)}
    assert len(on_log) == len(events)  # one place each: nothing reported twice
    read: set[tuple[int | None, int | None]] = set()
    with EventConsumer(f"test-{topic}", [topic], kafka_settings) as consumer:
        consumer.run(lambda m: read.add((m.partition(), m.offset())), max_messages=50,
                     idle_timeout=30)  # fmt: skip
    assert read == on_log


def test_an_event_the_broker_never_confirms_is_reported_as_delivery_failed() -> None:
    nobody = Settings(environment="test", kafka=KafkaSettings(cluster=f"127.0.0.1:{free_port()}"))
    producer = EventProducer(nobody, **{"message.timeout.ms": 500})
    try:
        [outcome] = _outcomes(producer, [Outgoing("carelog.test.none", "k", b"x")], 30)
    finally:
        producer.close(timeout=1)
    assert isinstance(outcome, DeliveryFailed)
    assert "carelog.test.none" in str(outcome) and "did not confirm" in str(outcome)


@pytest.mark.kafka
def test_a_cancelled_wait_leaves_the_delivery_thread_serving(kafka_settings: Settings) -> None:
    topic = f"test.produce.{uuid.uuid4().hex[:8]}"
    apply_catalogue([Topic(topic, "k", "InboundMessage", 1, 1, 1, {})], kafka_settings)
    with EventProducer(kafka_settings) as producer:
        abandoned = producer.submit(Outgoing(topic, "k", b"first"))
        assert abandoned.cancel()  # what asyncio.wrap_future does when its task is cancelled
        later = producer.submit(Outgoing(topic, "k", b"second"))
        assert later.result(timeout=30).topic == topic
