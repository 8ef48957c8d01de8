"""Matching carelog.fhir.changes against the Subscriptions, in log order.

The notifier keeps its own copy of the FHIR store (the same fold, `FhirStore.applier`), so
a criteria is answered by the store's own search narrowed to the changed resource
(`_id=<id>`): every search parameter, modifier and chain the REST API serves works in
criteria too, with nothing copied. Subscriptions arrive on the same log: a Subscription
change starts, updates or stops one, and it is notified only of changes after it in the
order read. A batch is matched against the store as it is at the end of that batch, and a
change read again after a crash against the resource's latest state. Partitions are
read in no set order relative to each other: a change appended just after a Subscription
but read before it is not notified (a client creates its Subscription, then expects).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from projections.fhir_store import FhirStore, SearchError
from projections.fhir_store.apply import Record
from projections.fhir_store.runner import log_partitions
from projections.notifier.state import Batch, State
from projections.notifier.subscriptions import (
    NOT_SERVED,
    InvalidSubscription,
    Subscription,
    parse_subscription,
    wants_notifications,
)
from schemas.errors import CodecError
from schemas.events import Operation, ResourceChanged
from streams.consumer import BatchLimits, BatchReader
from streams.event_codec import decode_opened
from streams.kafka_config import consumer_config
from streams.settings import Settings
from streams.topics import FHIR_CHANGES

log = logging.getLogger(__name__)


@dataclass
class MatchStats:
    changes: int = 0
    matched: int = 0
    batches: int = 0


class Matcher:
    """Folds batches of the change log into the mirror store and the notifier's state."""

    def __init__(self, store: FhirStore, state: State) -> None:
        self.store = store
        self.state = state
        self.applier = store.applier()
        self.active: dict[str, Subscription] = {}
        for row in state.subscriptions():
            if row.status != "off" and not (row.error or "").startswith(NOT_SERVED):
                with contextlib.suppress(InvalidSubscription):
                    self.active[row.id] = parse_subscription(orjson.loads(row.json))

    def _subscription_changed(self, change: ResourceChanged, batch: Batch) -> None:
        sub_id = change.resource_id
        if change.operation is Operation.delete or change.resource is None:
            self.active.pop(sub_id, None)
            batch.subscriptions[sub_id] = ("{}", "off", "deleted")
            return
        resource = orjson.loads(change.resource)
        if not wants_notifications(resource):
            self.active.pop(sub_id, None)
            batch.subscriptions[sub_id] = (change.resource, "off", None)
            return
        try:
            sub = parse_subscription(resource)
            # A criteria the store cannot search is refused now, not at the first change.
            self.store.search(sub.resource_type, [*sub.params, ("_count", "0")])
        except (InvalidSubscription, SearchError) as exc:
            self.active.pop(sub_id, None)
            batch.subscriptions[sub_id] = (change.resource, "error", f"{NOT_SERVED}: {exc}")
            return
        self.active[sub_id] = sub
        batch.subscriptions[sub_id] = (change.resource, "requested", None)

    def _matches(self, change: ResourceChanged) -> list[str]:
        found = []
        for sub in self.active.values():
            if sub.resource_type != change.resource_type:
                continue
            try:
                hits = self.store.search(sub.resource_type, sub.criteria_params(change.resource_id))
            except SearchError as exc:  # checked when it came; kept alive if data trips it
                log.warning("subscription %s: criteria failed: %s", sub.id, exc)
                continue
            if hits.matches:
                found.append(sub.id)
        return found

    def handle(self, records: list[Record]) -> int:
        """Match one batch and commit it with its offsets; how many events it numbered."""
        stored = self.state.offsets()
        fresh = [r for r in records if r[2] > stored.get((r[0], r[1]), -1)]
        if not fresh:
            return 0
        self.applier.apply(fresh)  # skips what the mirror applied before a crash
        batch = Batch({}, {}, [])
        changes: list[ResourceChanged] = []
        for topic, partition, offset, value in fresh:
            batch.offsets[(topic, partition)] = offset
            try:
                event, key_id = decode_opened(value or b"")
            except CodecError:
                continue  # the store counts it undecodable; nothing to notify
            if isinstance(event, ResourceChanged):
                changes.append(event)
                if key_id:
                    batch.keys[(event.resource_type, event.resource_id)] = key_id
        # Subscriptions first: the partitions of one batch interleave in no set order, so a
        # change read beside its subscription is taken as after it.
        for event in changes:
            if event.resource_type == "Subscription":
                self._subscription_changed(event, batch)
        for event in changes:
            if event.resource_type == "Subscription":
                continue
            if event.operation is Operation.delete or event.resource is None:
                continue  # deletions are not notified
            at = event.recorded_at.astimezone(UTC).isoformat(timespec="milliseconds")
            at = at.replace("+00:00", "Z")
            for sub_id in self._matches(event):
                batch.events.append((sub_id, at, event.resource_type, event.resource_id,
                                     event.version, event.resource))  # fmt: skip
        self.state.commit(batch)
        return len(batch.events)


def _records(batch: list[Message]) -> list[Record]:
    out: list[Record] = []
    for msg in batch:
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        out.append((topic, partition, offset, msg.value()))
    return out


def run_matcher(
    matcher: Matcher,
    settings: Settings,
    *,
    stop: threading.Event,
    on_batch: Callable[[int, int], None],
) -> MatchStats:
    """Read carelog.fhir.changes from the offsets in the state (the truth) until `stop`;
    `on_batch(changes, matched)` after each commit.

    Every partition is assigned, not shared through a group rebalance: the subscriptions'
    state is this process's, and a restart after SIGKILL reads on at once instead of
    waiting out a dead member's session. The offsets are still committed under
    CARELOG_NOTIFIER_GROUP_ID, so lag shows in `carelog status` and the metrics.
    """
    consumer = Consumer(consumer_config(settings, settings.notifier.group_id))
    reader = BatchReader(consumer, BatchLimits(1000, settings.notifier.batch_ms / 1000, 0.05))
    stored = matcher.state.offsets()
    reader.assign([
        TopicPartition(t, p, stored[(t, p)] + 1 if (t, p) in stored else OFFSET_BEGINNING)
        for t, p in log_partitions(consumer, (FHIR_CHANGES,))
    ])  # fmt: skip
    stats = MatchStats()
    try:
        for batch in reader.batches(stop=stop):
            matched = matcher.handle(_records(batch))
            reader.mark_handled(batch)
            stats.changes += len(batch)
            stats.matched += matched
            stats.batches += 1
            on_batch(len(batch), matched)
    finally:
        reader.close()
    return stats
