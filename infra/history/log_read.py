"""Reading topics from a start to where they end now, for commands that look back at the log.

Bounded scans, not subscriptions: each partition is read from its start (an offset, or the
first record at or after a time) up to its end when the scan began (read_committed, so
aborted transactions never show), then the scan stops.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.errors import LogError
from streams.kafka_config import client_config
from streams.settings import Settings

Position = tuple[str, int]  # topic, partition


@dataclass(frozen=True, slots=True)
class LogRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def scan_consumer(settings: Settings) -> Consumer:
    return Consumer(
        client_config(
            settings,
            **{
                "group.id": f"carelog-scan-{uuid.uuid4()}",  # never joined: assign() only
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,  # the end of a partition is told, not waited for
            },
        )
    )


def partitions_of(consumer: Consumer, topics: Iterable[str]) -> list[Position]:
    """Every partition of `topics`; raises LogError naming a topic that does not exist."""
    meta = consumer.list_topics(timeout=15)
    found: list[Position] = []
    for topic in topics:
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            raise LogError(f"topic {topic} does not exist (carelog topics list)")
        found.extend((topic, p) for p in sorted(tmeta.partitions))
    return found


def starts_at_time(
    consumer: Consumer, positions: list[Position], since_ms: int
) -> dict[Position, int]:
    """The first offset at or after `since_ms` per partition (partitions with none left out)."""
    asked = [TopicPartition(t, p, since_ms) for t, p in positions]
    found = consumer.offsets_for_times(asked, timeout=15)
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}


def read_log(
    settings: Settings,
    topics: Iterable[str],
    *,
    since_ms: int | None = None,
    starts: dict[Position, int] | None = None,
    partitions: set[Position] | None = None,
) -> Iterator[LogRecord]:
    """The records of `topics` from their starts to their current ends, per partition in order.

    Start: `starts[(topic, partition)]` when given (unlisted partitions are not read), else
    the first record at or after `since_ms`, else offset 0. `partitions` limits the scan.
    """
    consumer = scan_consumer(settings)
    try:
        positions = partitions_of(consumer, topics)
        if partitions is not None:
            positions = [tp for tp in positions if tp in partitions]
        if starts is not None:
            begin = {tp: starts[tp] for tp in positions if tp in starts}
        elif since_ms is not None:
            begin = starts_at_time(consumer, positions, since_ms)
        else:
            begin = dict.fromkeys(positions, 0)
        ends: dict[Position, int] = {}
        for tp, start in begin.items():
            _, high = consumer.get_watermark_offsets(TopicPartition(*tp), timeout=15)
            if start < high:
                ends[tp] = high
        if not ends:
            return
        consumer.assign([TopicPartition(t, p, begin[(t, p)]) for t, p in ends])
        yield from _until_ends(consumer, ends)
    finally:
        consumer.close()


def _headers(raw: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, value in raw or []:
        out[name] = value.encode() if isinstance(value, str) else value or b""
    return out


def _until_ends(consumer: Consumer, ends: dict[Position, int]) -> Iterator[LogRecord]:
    pending = dict(ends)
    while pending:
        for msg in consumer.consume(500, 0.5):
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.pop((msg.topic() or "", msg.partition() or 0), None)
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None
            tp = (topic, partition)
            end = pending.get(tp)
            if end is None or offset >= end:
                continue
            if offset + 1 >= end:
                del pending[tp]
            yield LogRecord(
                topic, partition, offset, msg.timestamp()[1], msg.key(), msg.value() or b"",
                _headers(msg.headers()),
            )  # fmt: skip
        if pending:  # past aborted transactions or control records: positions move on
            positions = consumer.position([TopicPartition(t, p) for t, p in pending])
            for pos in positions:
                if pos.offset >= 0 and pos.offset >= pending[(pos.topic, pos.partition)]:
                    del pending[(pos.topic, pos.partition)]


def read_one(settings: Settings, topic: str, partition: int, offset: int) -> LogRecord | None:
    """The record at that position (None: it is gone or was never committed)."""
    for record in read_log(settings, [topic], starts={(topic, partition): offset}):
        return record if record.offset == offset else None
    return None
