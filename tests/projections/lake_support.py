"""Appending ResourceChanged events the way the versioning stage does, and reading tables back."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
from deltalake import DeltaTable

from schemas.events import Operation, ResourceChanged, encode_event
from streams.producer import Delivered, EventProducer, Outgoing
from streams.topics import FHIR_CHANGES


def change(
    resource: dict[str, Any] | None,
    version: int = 1,
    *,
    rtype: str | None = None,
    rid: str | None = None,
    recorded_at: datetime | None = None,
) -> ResourceChanged:
    """The ResourceChanged of `resource` at `version` (None with rtype/rid: a delete)."""
    now = recorded_at or datetime.now(UTC)
    rtype = rtype or (resource or {})["resourceType"]
    rid = rid or (resource or {})["id"]
    body = None
    if resource is not None:
        meta = {
            **resource.get("meta", {}),
            "versionId": str(version),
            "lastUpdated": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        body = orjson.dumps({**resource, "meta": meta}, option=orjson.OPT_SORT_KEYS).decode()
    return ResourceChanged(
        event_id=str(uuid.uuid4()),
        resource_type=rtype,
        resource_id=rid,
        version=version,
        operation=Operation.upsert if resource is not None else Operation.delete,
        content_hash=hashlib.sha256(body.encode()).hexdigest() if body else "",
        inbound_event_id=str(uuid.uuid4()),
        inbound_topic="carelog.inbound.hl7v2",
        inbound_partition=0,
        inbound_offset=0,
        recorded_at=now,
        mapping_version="tests/1",
        resource=body,
        business_time=None,
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
