"""Bronze rows are built from the plainly decoded events: every field as the event holds it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from projections.lake import bronze
from projections.lake.changes import Change
from tests.projections import fhir_samples as fx
from tests.projections.lake_support import change


def test_bronze_rows_hold_every_field_of_the_events() -> None:
    recorded = datetime(2026, 3, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    business = datetime(2025, 12, 1, 8, 30, tzinfo=UTC)
    events = [
        change(fx.patient("p1"), recorded_at=recorded),
        change(fx.observation("o1", "p1", value=5.5), 2, recorded_at=recorded),
        change(None, 3, rtype="Patient", rid="p1", recorded_at=datetime(2026, 4, 1, tzinfo=UTC)),
    ]
    events[1] = replace(events[1], business_time=business)
    written = datetime(2026, 4, 2, tzinfo=UTC)
    changes = [Change.of(e, "carelog.fhir.changes", 3, 100 + i) for i, e in enumerate(events)]
    rows = bronze.to_arrow(changes, written_at=written).to_pylist()
    assert [r["month"] for r in rows] == ["2026-03", "2026-03", "2026-04"]
    for row, event, offset in zip(rows, events, (100, 101, 102), strict=True):
        assert row == {
            "resource_type": event.resource_type,
            "month": row["month"],
            "resource_id": event.resource_id,
            "version": event.version,
            "operation": event.operation.value,
            "last_updated": event.recorded_at,
            "business_time": event.business_time,
            "resource": event.resource,
            "content_hash": event.content_hash,
            "mapping_version": event.mapping_version,
            "event_id": event.event_id,
            "inbound_event_id": event.inbound_event_id,
            "inbound_topic": event.inbound_topic,
            "inbound_partition": event.inbound_partition,
            "inbound_offset": event.inbound_offset,
            "kafka_topic": "carelog.fhir.changes",
            "kafka_partition": 3,
            "kafka_offset": offset,
            "written_at": written,
        }
