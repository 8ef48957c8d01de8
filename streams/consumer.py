"""Reading events from the log in batches, the one consumer loop every reader of the log uses.

`BatchReader` polls, skips end-of-partition notices, closes a batch by count, by time, or as
soon as a read finds the log drained for `linger_seconds` (a backlog's last batch does not
sit out the batch time), stops when told, when idle too long or when the caller says it is
done, and drops what it holds of partitions taken away from it. A read returns as soon as a
message is there: librdkafka's `consume(n, timeout)` waits for all n or the whole timeout,
so a read takes what is fetched already and waits, if at all, for one message. What a batch
means is the caller's: the projections apply it together with the offsets it reached (their
state is the truth); a consumer-group member marks it handled so its offsets are committed
(`mark_handled`).

`EventConsumer` is a consumer-group member built on it, for handlers of one message at a time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.kafka_config import consumer_config
from streams.settings import Settings, get_settings

MAX_PER_READ = 10_000  # messages asked of librdkafka in one call
PartitionsCallback = Callable[[list[TopicPartition]], None]


def take_ready(consumer: Consumer, count: int, wait: float) -> list[Message]:
    """Up to `count` messages (end-of-partition notices included): what is fetched already;
    with nothing fetched, the first to arrive within `wait` seconds and what came with it.
    (`consume(count, wait)` alone waits for all `count` or the whole `wait`.)"""
    messages = consumer.consume(count, 0)
    if not messages and wait > 0:
        first = consumer.poll(wait)
        if first is not None:
            messages = [first, *consumer.consume(count - 1, 0)] if count > 1 else [first]
    return messages


@dataclass(frozen=True)
class BatchLimits:
    """A batch closes at `max_events` messages, `max_seconds` after its first, or when no more
    came for `linger_seconds` (`poll_seconds` if None), whichever is first."""

    max_events: int
    max_seconds: float
    poll_seconds: float = 0.2  # longest wait in one read (how soon `stop` is noticed)
    # 0: a batch is what has arrived by the time it is read (a reader that wants low latency
    # and whose batches cost little each); longer gathers bigger batches from a slow flow.
    linger_seconds: float | None = None
    # The linger applies only while messages come at least this fast a second (over the
    # last RATE_WINDOW of batches): a reader whose batches cost much each then gathers
    # bigger ones under load and applies a light flow's at once. 0: always.
    linger_above: float = 0.0

    def __post_init__(self) -> None:
        if self.max_events < 1 or self.max_seconds <= 0 or self.poll_seconds <= 0:
            raise ValueError(f"batch limits must be positive, got {self}")
        if self.linger_seconds is not None and self.linger_seconds < 0:
            raise ValueError(f"batch linger must not be negative, got {self}")
        if self.linger_above < 0:
            raise ValueError(f"batch linger rate must not be negative, got {self}")

    @property
    def linger(self) -> float:
        return self.poll_seconds if self.linger_seconds is None else self.linger_seconds

    def linger_at(self, rate: float) -> float:
        """The linger while messages come at `rate` a second."""
        return self.linger if rate >= self.linger_above else 0.0


RATE_WINDOW = 1.0  # seconds of batches over which a reader's flow is measured


def _rate(recent: deque[tuple[float, int]], now: float, count: int) -> float:
    """Messages a second over the last RATE_WINDOW seconds, with `count` more now."""
    recent.append((now, count))
    while now - recent[0][0] > RATE_WINDOW:
        recent.popleft()
    return sum(n for _, n in recent) / RATE_WINDOW


class BatchReader:
    """The consumer loop: batches of messages from partitions assigned or subscribed to."""

    def __init__(self, consumer: Consumer, limits: BatchLimits) -> None:
        self.consumer = consumer
        self.limits = limits
        self._pending: list[Message] = []
        self._assigned = False  # idle time counts only once there is something to read

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read exactly these partitions from the offsets they carry (no group)."""
        self.consumer.assign(partitions)
        self._assigned = True

    def subscribe(self, topics: list[str], start_at: PartitionsCallback | None = None) -> None:
        """Join the consumer group for `topics`.

        `start_at` sets the offset of each partition this member is given (from the state
        the caller keeps) before reading starts; without it, reading resumes from the
        group's committed offsets. Messages held of partitions taken away are dropped: their
        next owner reads them again.
        """

        def on_assign(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            if start_at is not None:
                start_at(partitions)
                consumer.assign(partitions)
            self._assigned = True

        def on_revoke(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            gone = {(tp.topic, tp.partition) for tp in partitions}
            self._pending = [m for m in self._pending if (m.topic(), m.partition()) not in gone]

        self.consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)

    def batches(
        self,
        stop: threading.Event | None = None,
        idle_timeout: float | None = None,
        done: Callable[[], bool] | None = None,
    ) -> Iterator[list[Message]]:
        """Yield batches until `stop` is set, `idle_timeout` seconds pass with nothing read
        (once assigned), or `done()` holds between two batches. A batch is yielded before
        anything more is read: when the caller asks for the next one, the last is handled.
        """
        limits = self.limits
        deadline: float | None = None
        idle_since = time.monotonic()
        # Messages a second over the last RATE_WINDOW seconds of batches (`linger_at`): a
        # window, not the last batch, as a light flow comes in bursts (a worker's commit).
        recent: deque[tuple[float, int]] = deque()
        rate = 0.0
        while stop is None or not stop.is_set():
            if not self._pending:
                deadline = None
                if done is not None and done():
                    return
            now = time.monotonic()
            wait = limits.poll_seconds
            if deadline is not None:
                wait = max(0.0, min(limits.linger_at(rate), deadline - now))
            want = min(limits.max_events - len(self._pending), MAX_PER_READ)
            fresh = self._read(want, wait)
            now = time.monotonic()
            if self._pending and deadline is None:
                deadline = now + limits.max_seconds
            if self._pending and (
                not fresh or len(self._pending) >= limits.max_events or now >= (deadline or now)
            ):
                batch, self._pending = self._pending, []
                rate = _rate(recent, now, len(batch))
                yield batch
                idle_since = time.monotonic()
            elif not self._assigned or self._pending:
                idle_since = now
            elif idle_timeout is not None and now - idle_since > idle_timeout:
                return

    def _read(self, count: int, wait: float) -> int:
        """Append what one read brings to the pending batch; how many messages came."""
        fresh = 0
        for msg in take_ready(self.consumer, count, wait):
            err = msg.error()
            if err is None:
                self._pending.append(msg)
                fresh += 1
            elif err.code() != KafkaError._PARTITION_EOF:
                raise KafkaException(err)
        return fresh

    def mark_handled(self, messages: list[Message]) -> None:
        """Make these messages' offsets committable (a group commits them within a second)."""
        last: dict[tuple[str, int], int] = {}
        for msg in messages:
            tp = (str(msg.topic()), int(msg.partition() or 0))
            last[tp] = max(int(msg.offset() or 0), last.get(tp, -1))
        if last:
            self.consumer.store_offsets(
                offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
            )

    def close(self) -> None:
        """Leave the group (committing what was marked handled, where auto-commit is on)."""
        self.consumer.close()


class EventConsumer:
    """A consumer-group member. Use `handled` after handling a message (or `run`)."""

    def __init__(
        self,
        group_id: str,
        topics: list[str],
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        consumer = Consumer(consumer_config(settings or get_settings(), group_id, **overrides))
        self._reader = BatchReader(consumer, BatchLimits(1000, 0.5))
        self._reader.subscribe(topics)

    def batches(
        self, batch_size: int = 1000, idle_timeout: float | None = None, poll_timeout: float = 0.5
    ) -> Iterator[list[Message]]:
        """Yield batches of messages until `idle_timeout` seconds pass with none (or forever)."""
        self._reader.limits = BatchLimits(batch_size, poll_timeout, poll_timeout)
        return self._reader.batches(idle_timeout=idle_timeout)

    def handled(self, msg: Message) -> None:
        """Mark a message done: its offset becomes committable (committed within a second)."""
        self._reader.mark_handled([msg])

    def run(
        self,
        handler: Callable[[Message], None],
        max_messages: int | None = None,
        idle_timeout: float | None = None,
    ) -> int:
        """Hand each message to `handler`, storing its offset only after it returns."""
        count = 0
        for batch in self.batches(idle_timeout=idle_timeout):
            for msg in batch:
                handler(msg)
                self.handled(msg)
                count += 1
                if max_messages is not None and count >= max_messages:
                    return count
        return count

    def assignment(self) -> list[TopicPartition]:
        return list(self._reader.consumer.assignment())

    def close(self) -> None:
        """Commit what was handled and leave the group."""
        try:
            self._reader.consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise
        finally:
            self._reader.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
