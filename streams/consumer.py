"""Reading events from the log, committing an offset only after its event was handled."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.kafka_config import consumer_config
from streams.settings import Settings, get_settings


class EventConsumer:
    """A consumer-group member. Use `handled` after handling a message (or `run`)."""

    def __init__(
        self,
        group_id: str,
        topics: list[str],
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        self._consumer = Consumer(
            consumer_config(settings or get_settings(), group_id, **overrides)
        )
        self._consumer.subscribe(topics)

    def batches(
        self, batch_size: int = 1000, idle_timeout: float | None = None, poll_timeout: float = 0.5
    ) -> Iterator[list[Message]]:
        """Yield batches of messages until `idle_timeout` seconds pass with none (or forever)."""
        idle_since = time.monotonic()
        while True:
            msgs = self._consumer.consume(batch_size, poll_timeout)
            good = []
            for msg in msgs:
                err = msg.error()
                if err is None:
                    good.append(msg)
                elif err.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(err)
            if good:
                idle_since = time.monotonic()
                yield good
            elif idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                return

    def handled(self, msg: Message) -> None:
        """Mark a message done: its offset becomes committable (committed within a second)."""
        self._consumer.store_offsets(message=msg)

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
        return list(self._consumer.assignment())

    def close(self) -> None:
        """Commit what was handled and leave the group."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise
        finally:
            self._consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
