"""Consumer lag: how far a reader is behind the end of the log, per topic partition.

lag = end of the partition - the next offset the reader will read. The end is the last
stable offset (read_committed), which is what carelog's readers can see. A reader that
committed nothing yet starts at the beginning (auto.offset.reset=earliest), so all of the
partition counts. On topics written in transactions (carelog.fhir.translated and
carelog.fhir.changes) each transaction ends with a commit marker that takes an offset and
that no reader is handed, so offsets overcount: a caught-up reader that stored "last record
+ 1" sits a marker or more behind the end. `count_pending` therefore counts the records
really waiting where the offset gap is small (up to COUNT_LIMIT), which is where markers
would otherwise be mistaken for work.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from confluent_kafka import (
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    TopicPartition,
)

# confluent-kafka's stubs do not re-export these, though the package does (and documents them).
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from streams.consumer import take_ready
from streams.errors import BrokerUnavailable
from streams.kafka_config import client_config, reader_config
from streams.settings import Settings

TP = tuple[str, int]
COUNT_LIMIT = 200


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    next_offset: int | None  # where the reader resumes; None: it committed nothing
    start: int  # low watermark
    end: int  # last stable offset
    pending: int | None = None  # records counted between position and end, when counted

    @property
    def position(self) -> int:
        return self.start if self.next_offset is None else max(self.next_offset, self.start)

    @property
    def lag(self) -> int:
        if self.pending is not None:
            return self.pending
        return max(0, self.end - self.position)


def total(lags: Iterable[PartitionLag]) -> int:
    return sum(p.lag for p in lags)


def by_topic(lags: Iterable[PartitionLag]) -> dict[str, int]:
    out: dict[str, int] = {}
    for p in lags:
        out[p.topic] = out.get(p.topic, 0) + p.lag
    return out


def partitions_of(admin: AdminClient, topics: Iterable[str], timeout: float = 5.0) -> list[TP]:
    """Every partition of the topics that exist (missing ones are left out)."""
    try:
        meta = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(f"no broker answered: {exc}") from exc
    found: list[TP] = []
    for topic in topics:
        tmeta = meta.topics.get(topic)
        if tmeta is not None and tmeta.error is None:
            found.extend((topic, p) for p in sorted(tmeta.partitions))
    return found


def watermarks(
    admin: AdminClient, partitions: Iterable[TP], timeout: float = 5.0
) -> dict[TP, tuple[int, int]]:
    """{(topic, partition): (low, last stable offset)} in two requests."""
    wanted = list(partitions)
    if not wanted:
        return {}
    ends: dict[TP, list[int]] = {tp: [0, 0] for tp in wanted}
    specs = (OffsetSpec.earliest(), OffsetSpec.latest())  # type: ignore[no-untyped-call]
    for index, spec in enumerate(specs):
        request = {TopicPartition(t, p): spec for t, p in wanted}
        futures = admin.list_offsets(
            request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout
        )
        try:
            for tp, future in futures.items():
                ends[(tp.topic, tp.partition)][index] = future.result(timeout).offset
        except (KafkaException, TimeoutError) as exc:
            raise BrokerUnavailable(f"could not read the ends of the log: {exc}") from exc
    return {tp: (low, high) for tp, (low, high) in ends.items()}


def committed_offsets(
    settings: Settings, group: str, partitions: Iterable[TP], timeout: float = 5.0
) -> dict[TP, int]:
    """The offsets `group` committed on `partitions` (the next one each member reads).

    Read with a consumer that never joins the group (Consumer.committed), not with the admin
    API: AdminClient.list_consumer_group_offsets crashes the process (SIGSEGV, confluent-kafka
    2.16.1) when the group coordinator is not available yet, e.g. on a fresh broker."""
    wanted = [TopicPartition(t, p) for t, p in partitions]
    if not wanted:
        return {}
    consumer = Consumer(client_config(settings, **{"group.id": group, "enable.auto.commit": False}))
    try:
        found = consumer.committed(wanted, timeout=timeout)
    except KafkaException as exc:  # e.g. a group coordinator still loading
        raise BrokerUnavailable(f"could not read the offsets of group {group}: {exc}") from exc
    finally:
        consumer.close()
    return {
        (tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0 and tp.error is None
    }


def lag_of(
    admin: AdminClient, next_offsets: Mapping[TP, int], topics: Iterable[str], timeout: float = 5.0
) -> list[PartitionLag]:
    """Lag on every partition of `topics` (and of any other topic in `next_offsets`)."""
    names = list(dict.fromkeys([*topics, *(t for t, _ in next_offsets)]))
    return _lags(watermarks(admin, partitions_of(admin, names, timeout), timeout), next_offsets)


def group_lag(
    settings: Settings, admin: AdminClient, group: str, topics: Iterable[str], timeout: float = 5.0
) -> list[PartitionLag]:
    """Lag of a consumer group on every partition of `topics`."""
    marks = watermarks(admin, partitions_of(admin, topics, timeout), timeout)
    return _lags(marks, committed_offsets(settings, group, marks, timeout))


def _lags(
    marks: Mapping[TP, tuple[int, int]], next_offsets: Mapping[TP, int]
) -> list[PartitionLag]:
    return [
        PartitionLag(t, p, next_offsets.get((t, p)), low, high)
        for (t, p), (low, high) in sorted(marks.items())
    ]


def count_pending(
    settings: Settings, lags: list[PartitionLag], timeout: float = 3.0
) -> list[PartitionLag]:
    """`lags` with the committed records between position and end counted (read_committed,
    so commit markers and aborted records are not counted) on partitions whose offset gap
    is 1..COUNT_LIMIT; other partitions keep their offset difference."""
    small = {(p.topic, p.partition): p for p in lags if 0 < p.lag <= COUNT_LIMIT}
    if not small:
        return lags
    consumer = Consumer(reader_config(settings, "lag", **{"enable.partition.eof": True}))
    counted = dict.fromkeys(small, 0)
    done: set[TP] = set()
    try:
        consumer.assign([TopicPartition(t, n, p.position) for (t, n), p in small.items()])
        deadline = time.monotonic() + timeout
        while len(done) < len(small) and time.monotonic() < deadline:
            for msg in take_ready(consumer, COUNT_LIMIT, 0.2):
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                assert topic is not None and partition is not None
                key = (topic, partition)
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        done.add(key)
                    continue
                if key in small and offset is not None and offset < small[key].end:
                    counted[key] += 1
                    if offset + 1 >= small[key].end:
                        done.add(key)
    finally:
        consumer.close()
    return [
        replace(p, pending=counted[(p.topic, p.partition)]) if (p.topic, p.partition) in done else p
        for p in lags
    ]
