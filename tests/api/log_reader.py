"""Reading back what a test appended: every record of a topic after a mark, filtered by
correlation id (the event's own, else the record's correlation-id header), decoded."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from schemas.events import Event
from streams.event_codec import decode_event
from streams.kafka_config import client_config
from streams.settings import Settings


def high_watermarks(consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int]:
    """High watermark per partition; retried while a fresh broker is still electing leaders
    (NOT_LEADER_FOR_PARTITION on a session's first read)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions
            }
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class LogReader:
    def __init__(self, settings: Settings) -> None:
        self._consumer = Consumer(
            client_config(
                settings, **{"group.id": f"test-reader-{uuid.uuid4()}", "enable.auto.commit": False}
            )
        )

    def _partitions(self, topic: str) -> list[int]:
        meta = self._consumer.list_topics(topic, timeout=10)
        return sorted(meta.topics[topic].partitions)

    def marks(self, topic: str) -> dict[int, int]:
        """The high watermark of each partition: where records appended from now on start."""
        return high_watermarks(self._consumer, topic, self._partitions(topic))

    def find(
        self, topic: str, since: dict[int, int], correlation_id: str
    ) -> list[tuple[bytes | None, Event]]:
        """Records after `since` whose event carries `correlation_id`, in log order per partition.

        Reads up to each partition's current high watermark; callers ask after the gateway
        answered, and the gateway answers only after the broker confirmed.
        """
        ends = self.marks(topic)
        todo = {p: end for p, end in ends.items() if end > since.get(p, 0)}
        if not todo:
            return []
        self._consumer.assign([TopicPartition(topic, p, since.get(p, 0)) for p in todo])
        found: list[tuple[bytes | None, Event]] = []
        deadline = time.monotonic() + 20
        while todo and time.monotonic() < deadline:
            msg = self._consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                continue
            event = decode_event(msg.value() or b"")
            if _correlation_id(msg, event) == correlation_id:
                found.append((msg.key(), event))
            partition, offset = msg.partition(), msg.offset()
            assert partition is not None and offset is not None  # a record always has both
            if offset + 1 >= todo.get(partition, 0):
                todo.pop(partition, None)
        self._consumer.unassign()
        return found

    def close(self) -> None:
        self._consumer.close()


def _correlation_id(msg: Message, event: Event) -> str | None:
    """InboundMessage and Rejected carry it; a ResourceChanged (an AuditEvent on carelog.audit)
    has it in the record's headers."""
    own = getattr(event, "correlation_id", None)
    if own is not None:
        return str(own)
    headers = msg.headers() or []
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        if name == "correlation-id" and value is not None:
            return value.decode() if isinstance(value, bytes) else value
    return None
