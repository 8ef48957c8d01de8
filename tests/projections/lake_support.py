"""Appending ResourceChanged events the way the versioning stage does, and reading tables back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from schemas.events import ResourceChanged
from streams.event_codec import encode_event
from streams.producer import Delivered, EventProducer, Outgoing
from streams.topics import FHIR_CHANGES
from tests.projections.fhir_store_support import changed


def change(
    resource: dict[str, Any] | None,
    version: int = 1,
    *,
    rtype: str | None = None,
    rid: str | None = None,
    recorded_at: datetime | None = None,
) -> ResourceChanged:
    """The ResourceChanged of `resource` at `version` (None with rtype/rid: a delete)."""
    return changed(
        resource or {"resourceType": rtype, "id": rid},
        version,
        delete=resource is None,
        at=recorded_at or datetime.now(UTC),
        inbound_topic="carelog.inbound.hl7v2",
        mapping_version="tests/1",
    )


def append(
    producer: EventProducer, changes: list[ResourceChanged], topic: str = FHIR_CHANGES
) -> list[Delivered]:
    return producer.send_many(Outgoing(topic, c.key, encode_event(c)) for c in changes)


def read(uri: str) -> pa.Table:
    return DeltaTable(uri).to_pyarrow_table()


def rows_of(table: pa.Table, column: str, values: set[str]) -> list[dict[str, Any]]:
    """Rows whose `column` is one of `values`, as dicts, in a stable order."""
    rows = [r for r in table.to_pylist() if r[column] in values]
    return sorted(rows, key=lambda r: tuple(str(v) for v in r.values()))
