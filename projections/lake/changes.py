"""Changes read from the log: the decoded event and where it was on the log."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Message

from projections.lake.offsets import Positions
from schemas.errors import CodecError
from schemas.events import ResourceChanged, decode_event

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Change:
    event: ResourceChanged
    topic: str
    partition: int
    offset: int
    _parsed: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def position(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def resource(self) -> dict[str, Any] | None:
        """The resource JSON parsed (once, however many views read it)."""
        if self._parsed is None and self.event.resource is not None:
            self._parsed = orjson.loads(self.event.resource)
        return self._parsed


@dataclass
class Batch:
    """One micro-batch: the changes decoded, and the last offset read of each partition."""

    changes: list[Change]
    read_up_to: Positions  # includes events that were skipped (undecodable, not a change)
    skipped: int = 0


def decode_batch(messages: Iterable[Message]) -> Batch:
    changes: list[Change] = []
    read: Positions = {}
    skipped = 0
    for msg in messages:
        topic, partition, offset = (
            str(msg.topic()),
            int(msg.partition() or 0),
            int(msg.offset() or 0),
        )
        read[(topic, partition)] = max(offset, read.get((topic, partition), -1))
        try:
            event = decode_event(msg.value() or b"")
        except CodecError as exc:
            skipped += 1
            log.warning(
                "skipping %s[%d]@%d: not a carelog event: %s", topic, partition, offset, exc
            )
            continue
        if not isinstance(event, ResourceChanged):
            skipped += 1
            log.warning(
                "skipping %s[%d]@%d: %s is not a ResourceChanged",
                topic,
                partition,
                offset,
                type(event).__name__,
            )
            continue
        changes.append(Change(event, topic, partition, offset))
    return Batch(changes, read, skipped)


def unseen(changes: list[Change], positions: Positions) -> list[Change]:
    """The changes a table does not hold yet (after its recorded offset of their partition)."""
    if not positions:
        return changes
    return [c for c in changes if c.offset > positions.get((c.topic, c.partition), -1)]


def latest_per_resource(changes: list[Change]) -> list[Change]:
    """The last change of each resource in the batch (the key keeps one resource in order)."""
    last: dict[tuple[str, str], Change] = {}
    for c in changes:
        last[(c.event.resource_type, c.event.resource_id)] = c
    return list(last.values())
