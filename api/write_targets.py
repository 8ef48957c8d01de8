"""Which resources a FHIR write will touch, known before the processors run.

Ids are deterministic (DESIGN.md, "Identity, versions, idempotency"): a create gets
uuid5(carelog namespace, "Type|event id"), a Bundle POST entry "Type|event id|index", a
conditional create "Type|system|value". This repeats processors/ids.py's one-line rule
(a test proves them equal) so that the gateway need not import the processors. The
writes come parsed by api/write_requests.py, the parse the scope check uses as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from api.write_requests import Write

CARELOG_NAMESPACE = uuid.UUID("fe8b97e0-0491-5218-945f-cd1ec0551b25")  # = processors.ids


def resource_id(resource_type: str, *parts: str) -> str:
    name = "|".join([resource_type, *(p.strip() for p in parts)])
    return str(uuid.uuid5(CARELOG_NAMESPACE, name))


@dataclass(frozen=True, slots=True)
class Target:
    """One resource a write touches; `resource` is the body sent (None for a delete)."""

    resource_type: str
    resource_id: str
    method: str  # POST, PUT or DELETE
    resource: dict[str, Any] | None

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_type, self.resource_id


def _conditional(resource_type: str, criteria: str) -> str | None:
    params = parse_qsl(criteria, keep_blank_values=True)
    if len(params) == 1 and params[0][0] == "identifier":
        system, bar, value = params[0][1].partition("|")
        if bar and system and value:
            return resource_id(resource_type, system, value)
    return None  # the processors refuse other criteria: the rejection answers


def target_of(write: Write, event_id: str) -> Target | None:
    """The resource `write` touches (None when it names none before the processors run: a
    conditional URL, criteria the processors refuse, a PATCH or a read)."""
    if write.method == "POST":
        if write.criteria is not None:
            new_id = _conditional(write.resource_type, write.criteria)
        elif write.entry is not None:
            new_id = resource_id(write.resource_type, event_id, str(write.entry))
        else:
            new_id = resource_id(write.resource_type, event_id)
        return None if new_id is None else Target(write.resource_type, new_id, "POST",
                                                  write.resource)  # fmt: skip
    if write.method in ("PUT", "DELETE") and write.resource_id is not None:
        body = write.resource if write.method == "PUT" else None
        return Target(write.resource_type, write.resource_id, write.method, body)
    return None
