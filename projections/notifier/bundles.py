"""Notification bundles and $status answers, shaped as the R4 subscriptions backport IG says.

A notification is a Bundle of type history whose first entry is a SubscriptionStatus
(in R4, a Parameters with the backport-subscription-status-r4 profile) and whose other
entries are the focus resources (id-only: fullUrl and request; full-resource: the version
from the log too). $status answers a searchset Bundle with the same Parameters.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from projections.notifier.state import Event, SubscriptionRow
from projections.notifier.subscriptions import Content

STATUS_PROFILE = (
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
    "backport-subscription-status-r4"
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def subscription_status(
    row: SubscriptionRow,
    base: str,
    kind: str,
    events: list[Event] = (),  # type: ignore[assignment]
    content: Content = Content.empty,
) -> dict[str, Any]:
    """The SubscriptionStatus Parameters of `row` (kind: event-notification, heartbeat,
    handshake or query-status)."""
    params: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": f"{base}/Subscription/{row.id}"}},
        {"name": "status", "valueCode": row.status},
        {"name": "type", "valueCode": kind},
        # R4 has no integer64: the backport IG carries the count as a string.
        {"name": "events-since-subscription-start", "valueString": str(row.matched)},
    ]
    if kind == "event-notification":
        params.append({"name": "events-in-notification", "valueInteger": len(events)})
    for event in events:
        part: list[dict[str, Any]] = [
            {"name": "event-number", "valueString": str(event.seq)},
            {"name": "timestamp", "valueInstant": event.at},
        ]
        if content is not Content.empty:
            focus = f"{base}/{event.resource_type}/{event.resource_id}/_history/{event.version}"
            part.append({"name": "focus", "valueReference": {"reference": focus}})
        params.append({"name": "notification-event", "part": part})
    if row.error:
        params.append({"name": "error", "valueCodeableConcept": {"text": row.error}})
    return {
        "resourceType": "Parameters",
        "id": str(uuid.uuid4()),
        "meta": {"profile": [STATUS_PROFILE]},
        "parameter": params,
    }


def _status_entry(status: dict[str, Any], base: str, sub_id: str) -> dict[str, Any]:
    return {
        "fullUrl": f"urn:uuid:{status['id']}",
        "resource": status,
        "request": {"method": "GET", "url": f"{base}/Subscription/{sub_id}/$status"},
        "response": {"status": "200"},
    }


def notification(
    row: SubscriptionRow, base: str, events: list[Event], content: Content, kind: str
) -> bytes:
    """A notification bundle (event-notification or heartbeat) as JSON bytes."""
    status = subscription_status(row, base, kind, events, content)
    entries = [_status_entry(status, base, row.id)]
    if content is not Content.empty:
        for event in events:
            entry: dict[str, Any] = {
                "fullUrl": f"{base}/{event.resource_type}/{event.resource_id}",
                "request": {"method": "PUT", "url": f"{event.resource_type}/{event.resource_id}"},
                "response": {"status": "201" if event.version == 1 else "200"},
            }
            if content is Content.full_resource and event.resource is not None:
                entry["resource"] = orjson.loads(event.resource)
            entries.append(entry)
    bundle = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "history",
        "timestamp": _now(),
        "entry": entries,
    }
    return orjson.dumps(bundle)


def status_bundle(row: SubscriptionRow, base: str) -> dict[str, Any]:
    """The answer of GET /fhir/Subscription/{id}/$status."""
    status = subscription_status(row, base, "query-status")
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [{"fullUrl": f"urn:uuid:{status['id']}", "resource": status,
                   "search": {"mode": "match"}}],
    }  # fmt: skip
