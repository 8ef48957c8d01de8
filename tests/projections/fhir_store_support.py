"""Building ResourceChanged events by hand for the FHIR store tests and benchmark."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from projections.fhir_store import FhirStore
from schemas.events import Operation, Rejected, ResourceChanged
from streams.event_codec import encode_event

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def uid() -> str:
    return uuid.uuid4().hex[:12]


def changed(
    resource: dict[str, Any],
    version: int = 1,
    *,
    delete: bool = False,
    inbound_event_id: str | None = None,
    at: datetime | None = None,
    inbound_topic: str = "carelog.inbound.fhir",
    mapping_version: str = "test",
) -> ResourceChanged:
    """A ResourceChanged for `resource` (which must have resourceType and id), as the
    versioning stage writes it (a delete has no body and an empty content hash)."""
    recorded_at = at or (T0 + timedelta(seconds=version))
    body: str | None = None
    if not delete:
        meta = {**resource.get("meta", {}), "versionId": str(version),
                "lastUpdated": recorded_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")}  # fmt: skip
        body = orjson.dumps({**resource, "meta": meta}, option=orjson.OPT_SORT_KEYS).decode()
    return ResourceChanged(
        event_id=str(uuid.uuid4()),
        resource_type=resource["resourceType"],
        resource_id=resource["id"],
        version=version,
        operation=Operation.delete if delete else Operation.upsert,
        content_hash=hashlib.sha256(body.encode()).hexdigest() if body is not None else "",
        inbound_event_id=inbound_event_id or str(uuid.uuid4()),
        inbound_topic=inbound_topic,
        inbound_partition=0,
        inbound_offset=0,
        recorded_at=recorded_at,
        mapping_version=mapping_version,
        resource=body,
        business_time=None,
    )


def rejected(original_event_id: str, reason: str = "invalid") -> Rejected:
    outcome = {"resourceType": "OperationOutcome",
               "issue": [{"severity": "error", "code": "invalid", "diagnostics": reason}]}  # fmt: skip
    return Rejected(
        event_id=str(uuid.uuid4()),
        rejected_at=T0,
        stage="validate",
        reason=reason,
        operation_outcome=orjson.dumps(outcome).decode(),
        original=b"{}",
        original_event_id=original_event_id,
    )


class Offsets:
    """Hands out offsets on a fake topic-partition, for applying without Kafka."""

    def __init__(self, topic: str = "carelog.fhir.changes", partition: int = 0) -> None:
        self.topic = topic
        self.partition = partition
        self.next = 0

    def records(
        self, events: Iterable[ResourceChanged | Rejected]
    ) -> Iterator[tuple[str, int, int, bytes]]:
        for event in events:
            yield self.topic, self.partition, self.next, encode_event(event)
            self.next += 1


def write_store(path: Path, events: Iterable[ResourceChanged | Rejected]) -> None:
    """A store file at `path` with `events` applied in order (offsets 0, 1, ...), closed."""
    with FhirStore.open(path) as store:
        store.applier().apply(Offsets().records(events))


def store_with(path: Path, resources: Iterable[dict[str, Any]]) -> FhirStore:
    """A writable store at `path` holding version 1 of each resource."""
    store = FhirStore.open(path)
    store.applier().apply(Offsets().records(changed(r) for r in resources))
    return store
