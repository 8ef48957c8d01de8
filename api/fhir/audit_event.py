"""The AuditEvent resource (FHIR R4) of one access to FHIR data: who, what, when, from where."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from api.security.auth import Principal

MAX_ENTITIES = 100  # a page of 1000 results is summarised by its query, not listed in full
# http://hl7.org/fhir/restful-interaction codes; search and $everything "execute" (E).
_ACTION = {"read": "R", "vread": "R", "history-instance": "R", "history-type": "R",
           "history-system": "R", "search-type": "E", "operation": "E"}  # fmt: skip


def audit_event(principal: Principal, interaction: str, address: str, refs: list[str],
                query: str | None, recorded_at: datetime | None = None) -> dict[str, object]:  # fmt: skip
    """The AuditEvent resource for one access (recorded now unless `recorded_at`)."""
    entities: list[dict[str, object]] = [
        {"what": {"reference": ref},
         "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                  "code": "2", "display": "System Object"}}
        for ref in refs[:MAX_ENTITIES]
    ]  # fmt: skip
    if query is not None:
        entities.append({
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                     "code": "2", "display": "System Object"},
            "description": query[:1024],
            "query": base64.b64encode(query.encode()).decode(),
        })  # fmt: skip
    agent: dict[str, object] = {
        "who": {"identifier": {"system": "urn:carelog:token-subject", "value": principal.subject}},
        "requestor": True,
        "network": {"address": address, "type": "2"},
    }
    event: dict[str, object] = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
                 "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": "http://hl7.org/fhir/restful-interaction", "code": interaction}],
        "action": _ACTION.get(interaction, "R"),
        "recorded": (recorded_at or datetime.now(UTC))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "outcome": "0",
        "agent": [agent],
        "source": {"observer": {"display": "carelog FHIR API"},
                   "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                             "code": "3", "display": "Web Server"}]},
    }  # fmt: skip
    if entities:
        event["entity"] = entities
    if principal.patient:
        event["extension"] = [{"url": "urn:carelog:smart-patient-context",
                               "valueString": principal.patient}]  # fmt: skip
    return event
