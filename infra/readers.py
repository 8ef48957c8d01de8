"""carelog's readers of the log and how far behind each one is.

The worker and the sink are consumer groups; the FHIR store projection is not (each API node
keeps its own replica and stores the offsets it applied in the store file), so its lag is
read from that file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka.admin import AdminClient

from projections.fhir_store.offsets_file import applied_offsets
from projections.fhir_store.runner import TOPICS as STORE_TOPICS
from schemas.events import Format
from streams.lag import (
    PartitionLag,
    by_topic,
    count_pending,
    group_lag,
    lag_of,
    partitions_of,
    total,
    watermarks,
)
from streams.settings import Settings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, inbound_topic

INBOUND = [inbound_topic(f) for f in Format]


@dataclass(frozen=True)
class ReaderLag:
    name: str  # the process: worker, projection, sink, notifier
    group: str  # its consumer group, or where it keeps its offsets
    partitions: list[PartitionLag] = field(default_factory=list)

    @property
    def total(self) -> int:
        return total(self.partitions)

    def by_topic(self) -> dict[str, int]:
        return by_topic(self.partitions)


def reader_lags(settings: Settings, admin: AdminClient, timeout: float = 5.0) -> list[ReaderLag]:
    """Lag of the worker, the projection, the sink and the notifier. Raises BrokerUnavailable."""
    store = settings.fhir_store_file
    readers = [
        ReaderLag(
            "worker",
            settings.worker.app_id,
            group_lag(
                settings, admin, settings.worker.app_id, [*INBOUND, FHIR_TRANSLATED], timeout
            ),
        ),
        ReaderLag(
            "projection",
            f"(store file {store.name})",
            lag_of(admin, applied_offsets(store), list(STORE_TOPICS), timeout),
        ),
        ReaderLag(
            "sink",
            settings.lake.group_id,
            group_lag(settings, admin, settings.lake.group_id, [FHIR_CHANGES], timeout),
        ),
        ReaderLag(
            "notifier",
            settings.notifier.group_id,
            group_lag(settings, admin, settings.notifier.group_id, [FHIR_CHANGES], timeout),
        ),
    ]
    # Count what really waits where the gap may be only commit markers (streams/lag.py).
    return [
        ReaderLag(r.name, r.group, count_pending(settings, r.partitions, timeout)) for r in readers
    ]


def log_ends(admin: AdminClient, topics: list[str], timeout: float = 5.0) -> dict[str, int]:
    """Sum of the partitions' end offsets per topic: its deltas over time are throughput."""
    marks = watermarks(admin, partitions_of(admin, topics, timeout), timeout)
    out = dict.fromkeys(topics, 0)
    for (topic, _), (_, high) in marks.items():
        out[topic] += high
    return out
