"""Which resources a FHIR write will touch, known before the processors run.

Ids are deterministic (the rule is processors/ids.py): a create gets
uuid5(carelog namespace, "Type|event id"), a Bundle POST entry "Type|event id|index", a
conditional create the id of the one resource the gateway matched, else "Type|system|value"
for identifier=system|value and "Type|?criteria" (sorted, URL-encoded) for other criteria.
This repeats the rules of processors/ids.py and processors/fhir_request.py (a test proves
them equal) so that the gateway need not import the processors. The writes come parsed by
api/fhir/write_requests.py, the parse the scope check uses as well.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from api.fhir.write_requests import Write

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


def target_of(write: Write, event_id: str, resolved: str | None = None) -> Target | None:
    """The resource `write` touches (None when it names none before the processors run: a
    conditional URL, a PATCH or a read). A conditional create's criteria were checked by
    api/fhir/if_none_exist.py; `resolved` is the id the gateway gave it ("": a plain create's)."""
    if write.method == "POST":
        if write.entry is None:
            new_id = resource_id(write.resource_type, event_id)
        else:
            new_id = resource_id(write.resource_type, event_id, str(write.entry))
        conditional = write.criteria is not None
        if write.criteria is not None:
            criteria = parse_qsl(write.criteria, keep_blank_values=True)
            new_id = _conditional_id(write.resource_type, criteria, resolved, new_id)
        return Target(write.resource_type, new_id, "POST", write.resource, conditional,
                      write.if_none_match)  # fmt: skip
    if write.method in ("PUT", "DELETE") and write.resource_id is not None:
        body = write.resource if write.method == "PUT" else None
        return Target(write.resource_type, write.resource_id, write.method, body,
                      if_none_match=write.if_none_match)  # fmt: skip
    return None
