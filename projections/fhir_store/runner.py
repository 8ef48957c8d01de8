"""`carelog projection`: read carelog.fhir.changes, carelog.audit and carelog.rejected into
the store (carelog.audit holds the gateway's AuditEvents as ResourceChanged, folded alike).

No consumer group: every replica assigns itself every partition of these topics and starts
after the offsets stored in its own file, so each API node can keep its own copy. Batches
of up to N events or T milliseconds, closed as soon as nothing more has been fetched
(streams/consumer.py), are applied in one transaction, offsets included.
The process holds an exclusive lock file beside the store: one writer per store.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from projections.fhir_store.apply import Applied, Record
from projections.fhir_store.errors import StoreError
from projections.fhir_store.store import FhirStore
from streams.admin import admin_client
from streams.consumer import BatchLimits, BatchReader
from streams.kafka_config import reader_config
from streams.lag import watermarks
from streams.settings import Settings
from streams.topics import AUDIT, FHIR_CHANGES, REJECTED
from streams.unreachable import until_reachable

log = logging.getLogger(__name__)

TOPICS = (FHIR_CHANGES, AUDIT, REJECTED)
Offsets = dict[tuple[str, int], int]


@dataclass
class RunStats:
    records: int = 0
    versions: int = 0
    rejections: int = 0
    batches: int = 0
    seconds: float = 0.0


@contextmanager
def writer_lock(store_path: Path) -> Iterator[None]:
    """Hold `<store>.lock` exclusively, or fail saying another writer has it."""
    store_path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = store_path.with_name(store_path.name + ".lock")
    fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(
                f"{store_path} is being written by another process (it holds {lock_path}); "
                "stop `carelog projection` first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


# The projection lingers for more only above this flow (`CARELOG_FHIR_STORE_BATCH_LINGER_MS`):
# 500 msg/s of the bench's mix bring about 1,700 changes a second, 50 msg/s about 170,
# which are applied as they come, at no added wait.
BUSY_CHANGES_PER_SECOND = 600.0


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        reader_config(
            settings,
            "fhir-store",
            **{
                "fetch.max.bytes": 52_428_800,
                "max.partition.fetch.bytes": 10_485_760,
                "queued.min.messages": 100_000,
                # A fetch answers once 64 KiB are there or 20 ms passed, not at every record
                # the worker commits: at 400 msg/s each reader made 100-200 fetches a second,
                # and the broker's CPU goes by requests more than by bytes.
                "fetch.min.bytes": 65_536,
                "fetch.wait.max.ms": 20,
            },
        )
    )


def log_partitions(consumer: Consumer, topics: tuple[str, ...]) -> list[tuple[str, int]]:
    meta = consumer.list_topics(timeout=15)
    found: list[tuple[str, int]] = []
    for topic in topics:
        tmeta = meta.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            raise StoreError(f"topic {topic} does not exist: run `carelog topics create`")
        found.extend((topic, p) for p in sorted(tmeta.partitions))
    return found


def consume(
    store: FhirStore,
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    until: Offsets | None = None,
    caught_up: bool = False,
    idle_timeout: float | None = None,
    batch_max: int | None = None,
    batch_ms: int | None = None,
    on_batch: Callable[[Applied], None] | None = None,
) -> RunStats:
    """Apply the log to `store` from its stored offsets.

    Stops when `stop` is set; or, with `caught_up`, once every partition is read to the
    end it had when this started; or, with `until`, once each listed partition has been
    applied up to that offset (inclusive; unlisted partitions are not read); or after
    `idle_timeout` seconds with nothing new.
    """
    limits = BatchLimits(
        batch_max or settings.store.batch_max,
        (batch_ms or settings.store.batch_ms) / 1000,
        linger_seconds=settings.store.batch_linger_ms / 1000,
        linger_above=BUSY_CHANGES_PER_SECOND,
    )
    applier = store.applier()
    reader = BatchReader(_consumer(settings), limits)
    stats = RunStats()
    started = time.monotonic()
    try:
        partitions = log_partitions(reader.consumer, TOPICS)
        if until is not None:
            partitions = [tp for tp in partitions if tp in until]
        if not partitions:
            return stats
        stored = applier.offsets
        targets: dict[tuple[str, int], int] = {}  # next offset to reach, per partition
        if until is not None:
            targets = {tp: until[tp] + 1 for tp in partitions}
        elif caught_up:  # asked before assigning: once fetching, each answer waits a fetch out
            # Last stable offsets: a transaction left open is not waited for (read_committed
            # stops there until it ends).
            ends = watermarks(admin_client(settings), partitions, timeout=15)
            targets = {tp: end for tp, (_, end) in ends.items()}
        reader.assign([
            TopicPartition(t, p, stored[(t, p)] + 1 if (t, p) in stored else OFFSET_BEGINNING)
            for t, p in partitions
        ])  # fmt: skip

        def reached() -> bool:
            return bool(targets) and _reached(reader.consumer, targets, applier.offsets)

        for batch in reader.batches(stop=stop, idle_timeout=idle_timeout, done=reached):
            records = _records(batch, targets if until is not None else None)
            if not records:
                continue
            applied = until_reachable("projection batch", partial(applier.apply, records), stop)
            stats.records += applied.records
            stats.versions += applied.versions
            stats.rejections += applied.rejections
            stats.batches += 1
            if on_batch is not None:
                on_batch(applied)
    finally:
        reader.close()
        stats.seconds = time.monotonic() - started
    return stats


def _records(batch: list[Message], below: dict[tuple[str, int], int] | None) -> list[Record]:
    """The batch as store records; with `below`, only those before each partition's target."""
    records: list[Record] = []
    for msg in batch:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        if below is not None and offset >= below[(topic, partition)]:
            continue
        records.append((topic, partition, offset, msg.value()))
    return records


def _reached(consumer: Consumer, targets: dict[tuple[str, int], int], applied: Offsets) -> bool:
    """Every partition applied (or, past control records, positioned) up to its target."""
    pending = [tp for tp, end in targets.items() if applied.get(tp, -1) + 1 < end]
    if not pending:
        return True
    positions = consumer.position([TopicPartition(t, p) for t, p in pending])
    return all(pos.offset >= targets[(pos.topic, pos.partition)] for pos in positions)
