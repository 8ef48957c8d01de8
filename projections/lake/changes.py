"""Changes read from the log: each ResourceChanged as Avro holds it, and where it was on the log.

The sink writes what it reads to Arrow columns, so events are decoded plain (schemas/codec.py):
times stay microseconds since the epoch and the operation its symbol, with no datetime or
event object made per change, which cost two thirds of the decode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Message

from projections.lake.offsets import Positions
from schemas.codec import AvroCodec
from schemas.errors import CodecError
from schemas.events import ResourceChanged
from streams.event_codec import encode_event
from streams.privacy.envelope import KeyMemo, open_record, shredded

log = logging.getLogger(__name__)
_codec = AvroCodec()
EVENT = ResourceChanged.__name__


@dataclass(slots=True)
class Change:
    """One ResourceChanged: its Avro record (times in µs since the epoch) and its position."""

    record: dict[str, Any]
    topic: str
    partition: int
    offset: int
    key_id: str | None = None  # the key it was opened with (`envelope.shredded` checks it)
    _parsed: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, event: ResourceChanged, topic: str, partition: int, offset: int) -> Change:
        """The change of an event as the sink would read it from the log."""
        _, record = _codec.decode(encode_event(event), EVENT, plain=True)
        key_id = open_record(EVENT, record)
        return cls(record, topic, partition, offset, key_id)

    @property
    def position(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    @property
    def resource_type(self) -> str:
        return str(self.record["resource_type"])

    @property
    def resource_id(self) -> str:
        return str(self.record["resource_id"])

    @property
    def version(self) -> int:
        return int(self.record["version"])

    @property
    def is_delete(self) -> bool:
        return bool(self.record["operation"] == "delete")

    @property
    def recorded_at_us(self) -> int:
        """When carelog recorded the version (= meta.lastUpdated), µs since the epoch."""
        return int(self.record["recorded_at"])

    def resource(self) -> dict[str, Any] | None:
        """The resource JSON parsed (once, however many views read it)."""
        if self._parsed is None and self.record["resource"] is not None:
            self._parsed = orjson.loads(self.record["resource"])
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
    ciphers: KeyMemo = {}  # the sink checks `shredded` before it writes
    for msg in messages:
        topic, partition, offset = (
            str(msg.topic()),
            int(msg.partition() or 0),
            int(msg.offset() or 0),
        )
        read[(topic, partition)] = max(offset, read.get((topic, partition), -1))
        try:
            name, record = _codec.decode(msg.value() or b"", plain=True)
        except CodecError as exc:
            skipped += 1
            log.warning(
                "skipping %s[%d]@%d: not a carelog event: %s", topic, partition, offset, exc
            )
            continue
        if name != EVENT:
            skipped += 1
            log.warning(
                "skipping %s[%d]@%d: %s is not a ResourceChanged", topic, partition, offset, name
            )
            continue
        key_id = open_record(name, record, ciphers)
        if record["sealed"] is not None:  # erased (carelog erase): its key is gone
            skipped += 1
            continue
        changes.append(Change(record, topic, partition, offset, key_id))
    return Batch(changes, read, skipped)


def not_shredded(changes: list[Change]) -> list[Change]:
    """The changes whose key was not shredded since they were opened (`carelog erase` came
    after the batch was read: what it holds of the patient must not be written)."""
    gone = _shredded_keys(changes)
    return [c for c in changes if c.key_id not in gone] if gone else changes


def shredded_resources(changes: list[Change]) -> set[tuple[str, str]]:
    """The resources among `changes` whose key has been shredded since they were opened."""
    gone = _shredded_keys(changes)
    return {(c.resource_type, c.resource_id) for c in changes if c.key_id in gone}


def _shredded_keys(changes: list[Change]) -> set[str]:
    return shredded({c.key_id for c in changes if c.key_id})


def split(batch: Batch, most: int) -> list[Batch]:
    """`batch` as batches of at most `most` changes, in order, each read up to exactly where
    the next one's changes start (the whole batch's positions once a partition has none left).

    Each partition's changes must be in log order, as the reader delivers them."""
    if len(batch.changes) <= most:
        return [batch]
    parts = [batch.changes[i : i + most] for i in range(0, len(batch.changes), most)]
    next_start: Positions = {}  # partition -> its first offset in a later part
    read_up_to: list[Positions] = []
    for part in reversed(parts):
        ends = {tp: next_start[tp] - 1 for tp in batch.read_up_to if tp in next_start}
        read_up_to.append({**batch.read_up_to, **ends})
        next_start.update(first_offsets(part))
    read_up_to.reverse()
    return [
        Batch(part, read, batch.skipped if i == 0 else 0)
        for i, (part, read) in enumerate(zip(parts, read_up_to, strict=True))
    ]


def unseen(changes: list[Change], positions: Positions) -> list[Change]:
    """The changes a table does not hold yet (after its recorded offset of their partition)."""
    if not positions:
        return changes
    return [c for c in changes if c.offset > positions.get((c.topic, c.partition), -1)]


def first_offsets(changes: Iterable[Change]) -> Positions:
    """The lowest offset of each partition among `changes` (where a commit's data starts)."""
    out: Positions = {}
    for c in changes:
        tp = (c.topic, c.partition)
        if c.offset < out.get(tp, c.offset + 1):
            out[tp] = c.offset
    return out


def by_resource_type(changes: list[Change]) -> dict[str, list[Change]]:
    """The changes of each resource type, in log order."""
    groups: dict[str, list[Change]] = {}
    for c in changes:
        groups.setdefault(c.record["resource_type"], []).append(c)
    return groups


def latest_per_resource(changes: list[Change]) -> list[Change]:
    """The last change of each resource in the batch (the key keeps one resource in order)."""
    last: dict[tuple[str, str], Change] = {}
    for c in changes:
        last[(c.record["resource_type"], c.record["resource_id"])] = c
    return list(last.values())
