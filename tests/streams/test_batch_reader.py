"""The one consumer loop (streams/consumer.py BatchReader), on a real broker."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.admin import apply_catalogue
from streams.consumer import BatchLimits, BatchReader
from streams.kafka_config import consumer_config
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import Topic

pytestmark = pytest.mark.kafka


def _topic_with(settings: Settings, count: int, partitions: int = 1) -> str:
    name = f"test.batches.{uuid.uuid4().hex[:8]}"
    apply_catalogue(
        [Topic(name, "test key", "InboundMessage", partitions, 1, 1, {"retention.ms": "-1"})],
        settings,
    )
    with EventProducer(settings) as producer:
        producer.send_many(Outgoing(name, f"k{i}", str(i).encode()) for i in range(count))
    return name


def _reader(settings: Settings, limits: BatchLimits, group: str | None = None) -> BatchReader:
    config = consumer_config(settings, group or f"test-batches-{uuid.uuid4()}")
    return BatchReader(Consumer(config), limits)


def test_batches_close_by_count_and_at_once_when_the_log_is_drained(
    kafka_settings: Settings,
) -> None:
    topic = _topic_with(kafka_settings, 2500)
    reader = _reader(kafka_settings, BatchLimits(max_events=1000, max_seconds=60))
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    started = time.monotonic()
    try:
        sizes, values = [], []
        for batch in reader.batches(idle_timeout=5.0):  # a cold broker is slow to first fetch
            sizes.append(len(batch))
            values += [int(m.value() or b"") for m in batch]
    finally:
        reader.close()
    assert sum(sizes) == 2500 and max(sizes) <= 1000
    assert values == list(range(2500))  # in order, none lost, none twice
    # The last batch closed when a read found the log drained, not after the batch time.
    assert time.monotonic() - started < 30


def test_without_linger_a_batch_is_what_has_arrived_and_waits_for_no_timer(
    kafka_settings: Settings,
) -> None:
    # Every wait long: a message must come through as soon as it is fetched, not when a read's
    # timeout (librdkafka's consume waits for all it asked for) or the batch time runs out.
    topic = _topic_with(kafka_settings, 0)
    limits = BatchLimits(max_events=1000, max_seconds=30, poll_seconds=10, linger_seconds=0)
    reader = _reader(kafka_settings, limits)
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    waits: list[float] = []
    try:
        batches = reader.batches(idle_timeout=60)
        with EventProducer(kafka_settings) as producer:
            for n in range(3):
                time.sleep(1.0)  # the reader is waiting in a read by now
                producer.send_many([Outgoing(topic, "k", str(n).encode())])
                sent = time.monotonic()
                batch = next(batches)
                waits.append(time.monotonic() - sent)
                assert [m.value() for m in batch] == [str(n).encode()]
    finally:
        reader.close()
    assert max(waits) < 2.0, waits  # a read of 10 s or a batch of 30 s would show here


def test_a_linger_above_a_rate_holds_a_heavy_flow_and_not_a_light_one(
    kafka_settings: Settings,
) -> None:
    """`linger_above`: the linger (here 3 s) applies only while messages come at least that
    fast (here 100 a second, over the last second of batches)."""
    topic = _topic_with(kafka_settings, 0)
    limits = BatchLimits(
        max_events=10_000, max_seconds=30, poll_seconds=10, linger_seconds=3, linger_above=100
    )
    reader = _reader(kafka_settings, limits)
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    try:
        batches = reader.batches(idle_timeout=60)
        with EventProducer(kafka_settings) as producer:
            time.sleep(1.0)  # the reader is waiting in a read by now
            producer.send_many([Outgoing(topic, "k", b"light")])
            sent = time.monotonic()
            assert [m.value() for m in next(batches)] == [b"light"]
            light_wait = time.monotonic() - sent  # a slow flow: applied at once
            time.sleep(1.0)
            producer.send_many([Outgoing(topic, "k", b"%d" % n) for n in range(2000)])
            heavy = list(next(batches))  # 2,000 at once: a heavy flow from now on
            while len(heavy) < 2000:
                heavy += next(batches)
            producer.send_many([Outgoing(topic, "k", b"next")])
            sent = time.monotonic()
            assert [m.value() for m in next(batches)] == [b"next"]
            held = time.monotonic() - sent  # waited for more: the linger
            producer.send_many([Outgoing(topic, "k", b"again")])
            sent = time.monotonic()
            assert [m.value() for m in next(batches)] == [b"again"]
            light_again = time.monotonic() - sent  # one in the last second: light again
    finally:
        reader.close()
    assert light_wait < 1.5 and light_again < 1.5, (light_wait, light_again)
    assert 2.5 < held < 10, held


def test_the_linger_applies_at_or_above_its_rate() -> None:
    limits = BatchLimits(max_events=10, max_seconds=1, linger_seconds=0.05, linger_above=600)
    assert limits.linger_at(0) == 0 and limits.linger_at(599) == 0
    assert limits.linger_at(600) == 0.05 and limits.linger_at(1_700) == 0.05
    always = BatchLimits(max_events=10, max_seconds=1, linger_seconds=0.05)
    assert always.linger_at(0) == 0.05  # the first batch lingers too


def test_done_is_asked_between_batches_and_stops_the_loop(kafka_settings: Settings) -> None:
    topic = _topic_with(kafka_settings, 300)
    reader = _reader(kafka_settings, BatchLimits(max_events=100, max_seconds=60))
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen: list[int] = []
    try:
        for batch in reader.batches(idle_timeout=30, done=lambda: len(seen) >= 200):
            seen.extend(int(m.value() or b"") for m in batch)
    finally:
        reader.close()
    assert seen == list(range(200))


def test_a_group_member_starts_where_the_callers_state_says_and_commits_what_was_handled(
    kafka_settings: Settings,
) -> None:
    topic = _topic_with(kafka_settings, 50)
    group = f"test-batches-{uuid.uuid4()}"

    def from_ten(partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            tp.offset = 10

    first = _reader(kafka_settings, BatchLimits(max_events=20, max_seconds=60), group)
    first.subscribe([topic], from_ten)
    try:
        batches = first.batches(idle_timeout=20)
        batch = next(batches)
        first.mark_handled(batch)
    finally:
        first.close()
    assert [int(m.value() or b"") for m in batch] == list(range(10, 30))

    again = _reader(kafka_settings, BatchLimits(max_events=1000, max_seconds=60), group)
    again.subscribe([topic])  # no state of its own: the group's committed offset
    try:
        rest = [int(m.value() or b"") for b in again.batches(idle_timeout=5) for m in b]
    finally:
        again.close()
    assert rest == list(range(30, 50))


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BatchLimits(max_events=0, max_seconds=1)
    with pytest.raises(ValueError, match="negative"):
        BatchLimits(max_events=1, max_seconds=1, linger_seconds=-1)
