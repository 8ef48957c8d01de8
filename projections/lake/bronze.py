"""The bronze table: every change on the log, appended as it came, with its lineage.

Partitioned by resource type and by the month of last_updated (when carelog recorded the
version). Nearly every query names a resource type ("Observations of patient X", "all
Conditions coded J18"), and most bound a period, so both prune whole folders. Month rather
than day keeps files large at hospital volumes (a day of one type is often a few MB), and
because the log is in record-time order an append touches one month per type: a commit
writes about one file per resource type. The partition columns are plain strings so every
reader (deltalake, polars, duckdb) prunes on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from projections.lake.changes import Change

PARTITION_BY = ["resource_type", "month"]
TIMESTAMP = pa.timestamp("us", "UTC")

SCHEMA = pa.schema(
    [
        pa.field("resource_type", pa.string(), nullable=False),
        pa.field("month", pa.string(), nullable=False),  # YYYY-MM of last_updated
        pa.field("resource_id", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("operation", pa.string(), nullable=False),  # upsert | delete
        pa.field("last_updated", TIMESTAMP, nullable=False),  # = meta.lastUpdated
        pa.field("business_time", TIMESTAMP),
        pa.field("resource", pa.string()),  # canonical JSON; null for a delete
        pa.field("content_hash", pa.string()),
        pa.field("mapping_version", pa.string()),
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("inbound_event_id", pa.string()),
        pa.field("inbound_topic", pa.string()),
        pa.field("inbound_partition", pa.int32()),
        pa.field("inbound_offset", pa.int64()),
        pa.field("kafka_topic", pa.string(), nullable=False),
        pa.field("kafka_partition", pa.int32(), nullable=False),
        pa.field("kafka_offset", pa.int64(), nullable=False),
        pa.field("written_at", TIMESTAMP, nullable=False),  # when the sink committed it
    ]
)
# Every column but the resource's content has file statistics (projections/lake/tables.py).
STATS_COLUMNS = tuple(f.name for f in SCHEMA if f.name != "resource")


def to_arrow(changes: list[Change], written_at: datetime | None = None) -> pa.Table:
    """The bronze rows of a batch, built column by column from the Avro records."""
    records = [c.record for c in changes]
    now = written_at or datetime.now(UTC)

    def column(name: str) -> list[Any]:
        return [r[name] for r in records]

    recorded = pa.array(column("recorded_at"), TIMESTAMP)  # µs since the epoch
    columns = [
        column("resource_type"),
        pc.strftime(recorded, format="%Y-%m"),
        column("resource_id"),
        column("version"),
        column("operation"),
        recorded,
        column("business_time"),
        column("resource"),
        column("content_hash"),
        column("mapping_version"),
        column("event_id"),
        column("inbound_event_id"),
        column("inbound_topic"),
        column("inbound_partition"),
        column("inbound_offset"),
        [c.topic for c in changes],
        [c.partition for c in changes],
        [c.offset for c in changes],
        pa.repeat(pa.scalar(now, TIMESTAMP), len(records)) if records else [],
    ]
    arrays = [
        col if isinstance(col, pa.Array) else pa.array(col, f.type)
        for col, f in zip(columns, SCHEMA, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)
