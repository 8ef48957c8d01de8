"""Every read or search of FHIR data is itself an event: an AuditEvent appended to the log.

The AuditEvent (FHIR R4) says who (the token's subject), what (the resources returned, or
the query for a search), when (recorded) and from where (the client's address).

The gateway is the authority for its own audit records, so it appends each one directly to
carelog.audit as the one and only version of the AuditEvent (a ResourceChanged, version 1,
whose id is the access's own event id), keyed AuditEvent/id. It does not go through the
processors: a read costs one small record batched by the gateway's audit producer
(CARELOG_FHIR_AUDIT_LINGER_MS), not a trip through translation, validation and versioning
that would queue writes behind reads. The FHIR store projection folds carelog.audit like
carelog.fhir.changes, so AuditEvents are readable over /fhir/AuditEvent.

What holds: a read is answered only after its AuditEvent is queued in the producer (made
with those of the other reads of the same turn of the event loop, api/fhir/audit_batch.py);
the read never waits for the broker: the append is confirmed in the background, and a
failure (the broker unreachable for CARELOG_GATEWAY_DELIVERY_TIMEOUT_MS) is logged and
counted, not answered. A gateway process killed within the linger (plus a broker round
trip) of a read loses that read's record; a gateway stopped normally appends every queued
record before it exits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.requests import Request

from api.fhir.audit_record import MAPPING_VERSION
from api.gateway import gateway_of, request_id
from api.security.auth import Principal
from api.security.guard import client_ip
from processors.canonical import canonical_json, content_hash
from processors.versioning import with_meta
from schemas.events import Operation, ResourceChanged
from streams.topics import AUDIT


def audit_change(event: dict[str, Any], access_id: str, recorded_at: datetime) -> ResourceChanged:
    """The AuditEvent of one access as the record carelog.audit keeps: version 1 of
    AuditEvent/<access id>. It comes from no inbound message, so its lineage names the
    access itself: inbound_event_id is the access id, inbound_topic carelog.audit, and
    inbound_partition / inbound_offset are -1. The read path appends the same record as
    bytes, built faster (api/fhir/audit_record.py)."""
    resource = {**event, "id": access_id}
    return ResourceChanged(
        event_id=access_id,
        resource_type="AuditEvent",
        resource_id=access_id,
        version=1,
        operation=Operation.upsert,
        content_hash=content_hash(resource),
        inbound_event_id=access_id,
        inbound_topic=AUDIT,
        inbound_partition=-1,
        inbound_offset=-1,
        recorded_at=recorded_at,
        mapping_version=MAPPING_VERSION,
        resource=canonical_json(with_meta(resource, 1, recorded_at)),
        business_time=recorded_at,
    )


async def audit(request: Request, principal: Principal, interaction: str,
                refs: list[str], query: str | None = None) -> None:  # fmt: skip
    """Queue the AuditEvent of this access for carelog.audit; returns once it is queued,
    without waiting for the broker (api/fhir/audit_batch.py)."""
    gw = gateway_of(request)
    if not gw.settings.fhir.audit_reads:
        return
    await gw.audit_batch.queue(principal, interaction, client_ip(request), refs, query,
                               request_id(request))  # fmt: skip
