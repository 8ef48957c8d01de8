"""Prometheus metrics of `carelog sink` (default registry, served on
CARELOG_SINK_METRICS_PORT). Lag is the sink group's committed offsets against the ends of
the log, read by a background thread every few seconds (carelog_consumer_lag,
reader="sink"); the committed offsets trail the tables by up to a second (the tables are
the truth, Kafka's offsets a hint)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from projections.lake.changes import Batch

CHANGES = Counter("carelog_sink_changes", "Changes written to the Delta tables.")
SKIPPED = Counter(
    "carelog_sink_skipped", "Records read but not written (undecodable, not a change)."
)
BATCHES = Counter("carelog_sink_batches", "Micro-batches committed.")
LAST_OFFSET = Gauge(
    "carelog_sink_last_offset", "Last offset written, per partition.", ["topic", "partition"]
)
LAST_BATCH = Gauge("carelog_sink_last_batch_timestamp_seconds", "When the last batch committed.")


def observe(batch: Batch, committed_at: float) -> None:
    CHANGES.inc(len(batch.changes))
    SKIPPED.inc(batch.skipped)
    BATCHES.inc()
    LAST_BATCH.set(committed_at)
    for (topic, partition), offset in batch.read_up_to.items():
        LAST_OFFSET.labels(topic, str(partition)).set(offset)
