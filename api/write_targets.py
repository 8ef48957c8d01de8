"""Which resources a FHIR write will touch, known before the processors run.

Ids are deterministic (DESIGN.md, "Identity, versions, idempotency"): a create gets
uuid5(carelog namespace, "Type|event id"), a Bundle POST entry "Type|event id|index", a
conditional create "Type|system|value". This repeats processors/ids.py's one-line rule
(a test proves them equal) so that the gateway need not import the processors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

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


def single(method: str, resource_type: str, target_id: str | None, body: dict[str, Any] | None,
           event_id: str, if_none_exist: str | None) -> list[Target]:  # fmt: skip
    """The target of POST /fhir/{type}, PUT or DELETE /fhir/{type}/{id}."""
    if method == "POST":
        new_id = (resource_id(resource_type, event_id) if if_none_exist is None
                  else _conditional(resource_type, if_none_exist))  # fmt: skip
        return [] if new_id is None else [Target(resource_type, new_id, "POST", body)]
    assert target_id is not None
    return [Target(resource_type, target_id, method, body if method == "PUT" else None)]


def of_bundle(bundle: dict[str, Any], event_id: str) -> list[Target | None]:
    """One target per entry, in entry order (None where the entry names no resource)."""
    out: list[Target | None] = []
    for index, entry in enumerate(bundle.get("entry") or []):
        request = entry.get("request") or {}
        method, url = request.get("method"), str(request.get("url", ""))
        parts = url.strip("/").split("?")[0].split("/")
        resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else None
        if method == "POST" and len(parts) == 1:
            criteria = request.get("ifNoneExist")
            new_id = (resource_id(parts[0], event_id, str(index)) if criteria is None
                      else _conditional(parts[0], str(criteria)))  # fmt: skip
            out.append(None if new_id is None else Target(parts[0], new_id, "POST", resource))
        elif method in ("PUT", "DELETE") and len(parts) == 2:
            out.append(Target(parts[0], parts[1], method, resource if method == "PUT" else None))
        else:
            out.append(None)
    return out
