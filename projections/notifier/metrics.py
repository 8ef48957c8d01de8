"""Prometheus metrics of `carelog notifier` (default registry, served on
CARELOG_NOTIFIER_METRICS_PORT). Lag is the notifier group's committed offsets against the
ends of carelog.fhir.changes (carelog_consumer_lag, reader="notifier"); its state file is
the truth, the group's offsets trail it by up to a second."""

from __future__ import annotations

import time
from datetime import datetime

from prometheus_client import Counter, Histogram

from projections.notifier.state import Event
from projections.notifier.subscriptions import Channel

CHANGES = Counter("carelog_notifier_changes", "Change-log records matched against subscriptions.")
MATCHED = Counter("carelog_notifier_matched", "Notification events numbered (per subscription).")
DELIVERED = Counter(
    "carelog_notifier_delivered", "Notification events delivered, by channel.", ["channel"]
)
DELIVERY_FAILURES = Counter(
    "carelog_notifier_delivery_failures", "Deliveries that failed (to be retried).", ["channel"]
)
LATENCY = Histogram(
    "carelog_notifier_latency_seconds",
    "From a change's recorded time to its notification's delivery.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60, 600, 3600),
)


def matched(changes: int, events: int) -> None:
    CHANGES.inc(changes)
    MATCHED.inc(events)


def delivered(channel: Channel, events: list[Event]) -> None:
    DELIVERED.labels(channel.value).inc(len(events))
    now = time.time()
    for event in events:
        recorded = datetime.fromisoformat(event.at.replace("Z", "+00:00")).timestamp()
        LATENCY.observe(max(0.0, now - recorded))
