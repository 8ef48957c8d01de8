"""Reading topics from a start to where they end now, for commands that look back at the log.

Bounded scans, not subscriptions: each partition is read from its start (an offset, or the
first record at or after a time) up to its end when the scan began (read_committed, so
aborted transactions never show), then the scan stops.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from schemas.errors import CodecError
from schemas.events import InboundMessage, Rejected, ResourceChanged, ResourceTranslated
from streams.admin import admin_client
from streams.consumer import take_ready
from streams.errors import LogError
from streams.event_codec import decode_event
from streams.kafka_config import reader_config
from streams.lag import partitions_of, watermarks
from streams.settings import Settings

Position = tuple[str, int]  # topic, partition
# Record timestamps are the producing host's clock; a scan from a time another host wrote
# starts this much earlier.
CLOCK_SKEW_MS = 300_000
E = TypeVar("E", InboundMessage, ResourceChanged, ResourceTranslated, Rejected)


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
    # The end of a partition is told, not waited for.
    return Consumer(reader_config(settings, "scan", **{"enable.partition.eof": True}))


def existing_partitions(admin: AdminClient, topics: Iterable[str]) -> list[Position]:
    """Every partition of `topics`; raises LogError naming a topic that does not exist."""
    topics = list(topics)
    found = partitions_of(admin, topics, timeout=15)
    missing = set(topics) - {t for t, _ in found}
    if missing:
        raise LogError(f"topic {', '.join(sorted(missing))} does not exist (carelog topics list)")
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
    by_time: bool = False,
) -> Iterator[LogRecord]:
    """The records of `topics` from their starts to their current ends, per partition in order
    (with `by_time`, all partitions merged in the order they were appended).

    Start: `starts[(topic, partition)]` when given (unlisted partitions are not read), else
    the first record at or after `since_ms`, else offset 0. `partitions` limits the scan.
    """
    admin = admin_client(settings)
    consumer = scan_consumer(settings)
    try:
        positions = existing_partitions(admin, topics)
        if partitions is not None:
            positions = [tp for tp in positions if tp in partitions]
        if starts is not None:
            begin = {tp: starts[tp] for tp in positions if tp in starts}
        elif since_ms is not None:
            begin = starts_at_time(consumer, positions, since_ms)
        else:
            begin = dict.fromkeys(positions, 0)
        marks = watermarks(admin, begin, timeout=15)  # ends: last stable offsets
        ends = {tp: marks[tp][1] for tp, start in begin.items() if start < marks[tp][1]}
        if not ends:
            return
        consumer.assign([TopicPartition(t, p, begin[(t, p)]) for t, p in ends])
        stream = _until_ends(consumer, ends)
        if by_time:
            yield from _by_time(stream, ends)
        else:
            yield from (r for r in stream if isinstance(r, LogRecord))
    finally:
        consumer.close()


def _headers(raw: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, value in raw or []:
        out[name] = value.encode() if isinstance(value, str) else value or b""
    return out


def _until_ends(consumer: Consumer, ends: dict[Position, int]) -> Iterator[LogRecord | Position]:
    """Each partition's records up to its end, and its Position once it has no more."""
    pending = dict(ends)
    while pending:
        for msg in take_ready(consumer, 500, 0.5):
            error = msg.error()
            if error is not None:
                done = (msg.topic() or "", msg.partition() or 0)
                if error.code() == KafkaError._PARTITION_EOF and done in pending:
                    del pending[done]
                    yield done
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            assert topic is not None and partition is not None and offset is not None
            tp = (topic, partition)
            end = pending.get(tp)
            if end is None or offset >= end:
                continue
            yield LogRecord(
                topic, partition, offset, msg.timestamp()[1], msg.key(), msg.value() or b"",
                _headers(msg.headers()),
            )  # fmt: skip
            if offset + 1 >= end:
                del pending[tp]
                yield tp
        if pending:  # past aborted transactions or control records: positions move on
            for pos in consumer.position([TopicPartition(t, p) for t, p in pending]):
                tp = (pos.topic, pos.partition)
                if pos.offset >= 0 and pos.offset >= pending[tp]:
                    del pending[tp]
                    yield tp


def _append_order(record: LogRecord) -> tuple[int, str, int, int]:
    return record.timestamp_ms, record.topic, record.partition, record.offset


def _by_time(
    stream: Iterator[LogRecord | Position], ends: Iterable[Position]
) -> Iterator[LogRecord]:
    """The records of all partitions merged in append order (timestamp, then position).

    A record is let out once every partition still being read has one buffered: none of
    them can bring an earlier one (a partition's timestamps only grow). Holds what the
    consumer fetched ahead, not the whole history.
    """
    buffers: dict[Position, deque[LogRecord]] = {tp: deque() for tp in ends}
    reading = set(buffers)
    for item in stream:
        if isinstance(item, LogRecord):
            buffers[(item.topic, item.partition)].append(item)
        else:
            reading.discard(item)
        while all(buffers[tp] for tp in reading):
            heads = [b for b in buffers.values() if b]
            if not heads:
                break
            yield min(heads, key=lambda b: _append_order(b[0])).popleft()
    rest = [r for b in buffers.values() for r in b]
    yield from sorted(rest, key=_append_order)


def read_one(settings: Settings, topic: str, partition: int, offset: int) -> LogRecord | None:
    """The record at that position (None: it is gone or was never committed)."""
    for record in read_log(settings, [topic], starts={(topic, partition): offset}):
        return record if record.offset == offset else None
    return None


def read_events(
    settings: Settings,
    topics: Iterable[str],
    kind: type[E],
    *,
    key: bytes | None = None,
    since_ms: int | None = None,
) -> Iterator[tuple[LogRecord, E]]:
    """`read_log`'s records holding a `kind` event (with `key`, when given), decoded; records
    that do not decode are passed over (`carelog tail` shows them)."""
    for record in read_log(settings, topics, since_ms=since_ms):
        if key is not None and record.key != key:
            continue
        try:
            event = decode_event(record.value)
        except CodecError:
            continue
        if isinstance(event, kind):
            yield record, event
