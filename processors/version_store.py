"""The versioning stage's state: in memory, recovered from carelog.fhir.changes itself.

The state of a key (processors/versioning.py VersionState) is what its last change says:
version, content hash and deleted are fields of the ResourceChanged, the current body (kept
for keys that merge, processors/version_policy.py) is its resource without the volatile meta,
and the inbound positions applied to the key travel in a header of the change record
(STATE_HEADER). So no changelog topic is written beside the changes: a third fewer records
produced per resource, and no table machinery per event.

Why that stays exactly-once: the change record is the state record, and it is written in the
transaction of the input partition that carries the input offset (processors/transactions.py).
The committed changes on a partition are therefore exactly the committed state, whatever
happened after: an aborted transaction (a SIGKILLed worker, a fenced producer) leaves neither
the change nor the state. Keys are co-partitioned: a change goes to the partition of the
translated record it came from (the same partition its key hashes to, as both topics have
the same partition count), so the state of translated partition p is the changes of
partition p, and only its owner's transactional producer writes there.

What is not in a change: an input that changed nothing (same content, create-only meeting a
current resource) moves the applied positions of its key and writes nothing. Losing that
on recovery is harmless: the key's state is still the one that input met, so meeting it
again changes nothing again; the next change of the key carries the applied positions of
every input before it, redelivered ones included.

A worker keeps the state of the translated partitions it holds, reads a partition's changes
(read_committed, to the last stable offset) when it is assigned, after its transactional
producer has fenced the previous owner's, and versions its first record once that read is
done. It forgets the partitions a rebalance takes away; one it keeps across a rebalance
keeps its state, which then includes the changes of its own open transaction. Reading costs
one decode per change of the partition's history (the changes topic is kept forever, not
compacted), where a changelog held one record per key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import orjson

from processors.canonical import content_of
from processors.version_policy import merges
from processors.versioning import VersionState
from schemas.events import Operation, ResourceChanged
from streams.event_codec import decode_event
from streams.log_scan import LogRecord, read_log
from streams.settings import Settings
from streams.topics import FHIR_CHANGES

STATE_HEADER = "carelog-applied"  # JSON {"topic:partition": last inbound offset applied}


def state_header(state: VersionState) -> tuple[str, bytes]:
    """The header a change record carries: the applied positions of the state after it."""
    return STATE_HEADER, orjson.dumps(state.applied)


def state_after(
    change: ResourceChanged, headers: dict[str, bytes], previous: VersionState | None
) -> VersionState:
    """The state of `change`'s key after it. A change written before the header existed
    adds its own inbound position to those of the changes before it."""
    raw = headers.get(STATE_HEADER)
    if raw is not None:
        applied = {str(k): int(v) for k, v in orjson.loads(raw).items()}
    else:
        source = f"{change.inbound_topic}:{change.inbound_partition}"
        applied = {**(previous.applied if previous else {}), source: change.inbound_offset}
    resource: dict[str, Any] | None = None
    deleted = change.operation is Operation.delete
    if not deleted and change.resource and merges(change.resource_type, change.mapping_version):
        resource = content_of(orjson.loads(change.resource))
    return VersionState(change.version, change.content_hash, deleted, applied, resource)


def recover(settings: Settings, partition: int) -> dict[str, VersionState]:
    """The state of every key on `partition`, from its committed changes. A change that
    carries the header holds its key's whole state, so only the last of a key is decoded."""
    states: dict[str, VersionState] = {}
    latest: dict[str, LogRecord] = {}
    for record in read_log(settings, [FHIR_CHANGES], partitions={(FHIR_CHANGES, partition)}):
        key = (record.key or b"").decode()
        if STATE_HEADER in record.headers:
            latest[key] = record
            continue
        held = latest.pop(key, None)
        previous = _state_of(held, None) if held is not None else states.get(key)
        folded = _state_of(record, previous)
        if folded is not None:
            states[key] = folded
    for key, record in latest.items():
        state = _state_of(record, None)
        if state is not None:
            states[key] = state
    return states


def _state_of(record: LogRecord, previous: VersionState | None) -> VersionState | None:
    # Version, hash and positions are in clear: the sealed body is opened (a key lookup and
    # a decrypt) only for the keys whose state keeps it.
    change = decode_event(record.value, open_phi=False)
    if not isinstance(change, ResourceChanged):
        return previous
    key_id = change.key_id
    if change.sealed is not None and merges(change.resource_type, change.mapping_version):
        change = decode_event(record.value)
        assert isinstance(change, ResourceChanged)
    return state_after(change, record.headers, previous).sealed_with(key_id)


class VersionStore:
    """The states of the translated partitions this worker holds. A partition's changes are
    read as soon as it is assigned (in a thread: the event loop keeps heartbeats and commits
    going), and its first record waits for that read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._partitions: dict[int, dict[str, VersionState]] = {}
        self._loads: dict[int, asyncio.Task[dict[str, VersionState]]] = {}

    async def states(self, partition: int) -> dict[str, VersionState]:
        held = self._partitions.get(partition)
        if held is None:
            load = self._loads.get(partition)
            if load is None:
                load = self._loads[partition] = asyncio.ensure_future(self._load(partition))
            held = await asyncio.shield(load)
        return held

    def keep_only(self, partitions: Iterable[int]) -> None:
        """The assignment is now `partitions`: forget the others (a rebalance gave them to
        another worker, whose changes a later read must see) and start reading the new."""
        kept = set(partitions)
        for partition in [p for p in self._partitions if p not in kept]:
            del self._partitions[partition]
        for partition in [p for p in self._loads if p not in kept]:
            del self._loads[partition]  # its read goes on, and is not kept
        for partition in kept - self._partitions.keys() - self._loads.keys():
            self._loads[partition] = asyncio.ensure_future(self._load(partition))

    async def _load(self, partition: int) -> dict[str, VersionState]:
        try:
            held = await asyncio.to_thread(recover, self.settings, partition)
        except BaseException:
            if self._loads.get(partition) is asyncio.current_task():
                del self._loads[partition]  # the next record tries again
            raise
        if self._loads.get(partition) is asyncio.current_task():
            # still this worker's all along: no one else wrote the partition meanwhile
            self._partitions[partition] = held
            del self._loads[partition]
        return held
