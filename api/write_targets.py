"""Which resources a FHIR write will touch, known before the processors run.

Ids are deterministic (DESIGN.md, "Identity, versions, idempotency"): a create gets
uuid5(carelog namespace, "Type|event id"), a Bundle POST entry "Type|event id|index", a
conditional create the id of the one resource the gateway matched, else "Type|system|value"
for identifier=system|value and "Type|?criteria" (sorted, URL-encoded) for other criteria.
This repeats the rules of processors/ids.py and processors/fhir_request.py (a test proves
them equal) so that the gateway need not import the processors.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

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
    if_none_exist: bool = False  # a conditional create: an existing resource is its answer
    if_none_match: bool = False  # If-None-Match: *: created, or refused (412)

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_type, self.resource_id


def criteria_id(resource_type: str, params: list[tuple[str, str]]) -> str:
    """The id a conditional create with these (checked) criteria gets when nothing matches."""
    if len(params) == 1 and params[0][0] == "identifier":
        system, bar, value = params[0][1].partition("|")
        if bar and system and value:
            return resource_id(resource_type, system, value)
    return resource_id(resource_type, "?" + urlencode(sorted(params)))


def _conditional_id(resource_type: str, criteria: list[tuple[str, str]], resolved: str | None,
                    plain_id: str) -> str:  # fmt: skip
    """= processors.fhir_request.conditional_target: the resolved id ("" gives `plain_id`),
    else the criteria's."""
    if resolved is None:
        return criteria_id(resource_type, criteria)
    return resolved or plain_id


def single(method: str, resource_type: str, target_id: str | None, body: dict[str, Any] | None,
           event_id: str, headers: Mapping[str, str], criteria: list[tuple[str, str]] | None,
           resolved: str | None) -> Target:  # fmt: skip
    """The target of POST /fhir/{type}, PUT or DELETE /fhir/{type}/{id}; `criteria` are a
    conditional create's (If-None-Exist) that matched nothing, `resolved` the id the
    gateway gave it ("": a plain create's), if any."""
    none_match = headers.get("if-none-match", "").strip() == "*"
    if method == "POST":
        new_id = resource_id(resource_type, event_id)
        if criteria is not None:
            new_id = _conditional_id(resource_type, criteria, resolved, new_id)
        return Target(resource_type, new_id, "POST", body, criteria is not None, none_match)
    assert target_id is not None
    return Target(resource_type, target_id, method, body if method == "PUT" else None,
                  if_none_match=none_match)  # fmt: skip


def of_bundle(bundle: dict[str, Any], event_id: str,
              criteria: Mapping[int, list[tuple[str, str]]],
              resolved: Mapping[int, str]) -> list[Target | None]:  # fmt: skip
    """One target per entry, in entry order (None where the entry names no resource);
    `criteria` of the conditional creates by entry index, `resolved` the ids the gateway
    gave them (their match, or "" for a plain create's)."""
    out: list[Target | None] = []
    for index, entry in enumerate(bundle.get("entry") or []):
        request = entry.get("request") or {}
        method, url = request.get("method"), str(request.get("url", ""))
        parts = url.strip("/").split("?")[0].split("/")
        resource = entry.get("resource") if isinstance(entry.get("resource"), dict) else None
        none_match = str(request.get("ifNoneMatch", "")).strip() == "*"
        if method == "POST" and len(parts) == 1:
            new_id = resource_id(parts[0], event_id, str(index))
            conditional = index in criteria
            if conditional:
                new_id = _conditional_id(parts[0], criteria[index], resolved.get(index), new_id)
            out.append(Target(parts[0], new_id, "POST", resource, conditional, none_match))
        elif method in ("PUT", "DELETE") and len(parts) == 2:
            out.append(Target(parts[0], parts[1], method, resource if method == "PUT" else None,
                              if_none_match=none_match))  # fmt: skip
        else:
            out.append(None)
    return out
