"""What a FHIR write will do, parsed once: its method, and the resource type and id its URL
names (the route's path, or a Bundle entry's request.url), never the body's resourceType.

The processors act on the method and the URL, so that is what is authorised: `need_of` turns
any write, a single request or a Bundle entry, into the SMART permission it needs, and
api/fhir/write_targets.py names the resource the gateway waits on from the same `Write`, so the
two cannot disagree. A Bundle entry whose resource is of another type than its URL names (a
decoy) is refused with 400 naming the entry (`check_resources`, once the scopes allowed
what the entries do: a caller without them hears 403 whatever the body holds).

Entry URLs are relative to the base: POST `Type`; PUT, PATCH and DELETE `Type/id` or the
conditional `Type?criteria`; GET and HEAD `Type...` (a read, needing `r`).

AuditEvent is an append-only record: a client may create one (a single POST, for a source
recording its own audit events) with the dedicated scope `system/audit.write`, which no FHIR
write scope grants; any update, patch or delete of one, and any AuditEvent entry written in
a Bundle, answers 405 whatever the token holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from api.errors import BadRequest, MethodNotAllowed
from api.fhir.checks import RESOURCE_ID, RESOURCE_TYPE
from api.security.scopes import AUDIT, Need
from schemas.outcome import Issue

ACTIONS = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d", "GET": "r", "HEAD": "r"}
BUNDLE_TYPES = ("transaction", "batch")
APPEND_ONLY = "AuditEvent"
# A PATCH entry carries its patch, not the resource: a JSON Patch (Binary) or FHIRPath Patch.
_PATCH_BODIES = ("Binary", "Parameters")


@dataclass(frozen=True, slots=True)
class Write:
    """One write as the processors will do it."""

    method: str  # POST, PUT, PATCH, DELETE (GET, HEAD: a read inside a Bundle)
    resource_type: str
    resource_id: str | None  # from Type/id; None for a create or a conditional URL
    criteria: str | None  # If-None-Exist / request.ifNoneExist, or a conditional URL's query
    resource: dict[str, Any] | None = None  # the body sent, if any
    entry: int | None = None  # its index in the Bundle; None for a single request
    if_none_match: bool = False  # If-None-Match: * (request.ifNoneMatch): create only, or 412

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.entry}]" if self.entry is not None else self.resource_type


def single_write(
    method: str,
    resource_type: str,
    resource_id: str | None,
    criteria: str | None,
    if_none_match: bool = False,
) -> Write:
    """POST /fhir/{type} (criteria: its If-None-Exist), PUT or DELETE /fhir/{type}/{id}."""
    criteria = criteria if method == "POST" else None
    return Write(method, resource_type, resource_id, criteria, if_none_match=if_none_match)


def need_of(write: Write) -> Need:
    """The permission `write` needs: its method on the type its URL names.

    Raises:
        MethodNotAllowed: a write to an AuditEvent other than a single create.
    """
    action = ACTIONS[write.method]
    if write.resource_type != APPEND_ONLY or action == "r":
        return Need(write.resource_type, action)
    if write.method == "POST" and write.entry is None:
        return Need(AUDIT, "c")
    if write.entry is None:
        why = f"{write.method} is refused"
        where, allow = None, "GET, HEAD"
    else:
        why = f"{write.where} ({write.method} AuditEvent) is refused: a Bundle may not write one"
        where, allow = f"{write.where}.request.method", "POST"
    raise MethodNotAllowed(
        Issue(
            f"AuditEvent is append-only: audit records are never updated or deleted; {why}. "
            "An audit source creates one with POST /fhir/AuditEvent and the "
            "system/audit.write scope",
            code="not-supported", location=where,
        ),
        headers={"Allow": allow},
    )  # fmt: skip


def _bad(diagnostics: str, location: str, code: str = "invalid") -> BadRequest:
    return BadRequest(Issue(diagnostics, code=code, location=location))


def bundle_writes(bundle: dict[str, Any]) -> list[Write]:
    """The writes of a transaction or batch Bundle, one per entry; 400 for a bad frame."""
    if bundle["resourceType"] != "Bundle":
        raise _bad("POST /fhir takes a Bundle", "resourceType")
    if bundle.get("type") not in BUNDLE_TYPES:
        raise _bad("Bundle.type must be transaction or batch", "Bundle.type", code="value")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise _bad("Bundle.entry must be an array", "Bundle.entry", code="structure")
    return [_entry_write(entry, index) for index, entry in enumerate(entries)]


def _entry_write(entry: Any, index: int) -> Write:
    where = f"Bundle.entry[{index}]"
    request = entry.get("request") if isinstance(entry, dict) else None
    if not isinstance(request, dict):
        raise _bad("each entry needs a request", f"{where}.request", code="required")
    method, url = request.get("method"), request.get("url")
    if not isinstance(method, str) or method not in ACTIONS:
        raise _bad("request.method must be GET, HEAD, POST, PUT, PATCH or DELETE",
                   f"{where}.request.method", code="value")  # fmt: skip
    if not isinstance(url, str) or not url:
        raise _bad("request.url is missing", f"{where}.request.url", code="required")
    resource_type, resource_id, query = _parse_url(method, url, f"{where}.request.url")
    resource = entry.get("resource")
    if method != "POST":
        criteria = query
    elif "ifNoneExist" in request:  # a non-string is kept as text, for the 400 it earns
        value = request["ifNoneExist"]
        criteria = value if isinstance(value, str) else orjson.dumps(value).decode()
    else:
        criteria = None
    return Write(method, resource_type, resource_id, criteria,
                 resource if isinstance(resource, dict) else None, index,
                 str(request.get("ifNoneMatch", "")).strip() == "*")  # fmt: skip


def check_resources(writes: list[Write]) -> None:
    """400 unless each POST and PUT carries a resource, and every resource sent is of the type
    its URL names (a PATCH's may be its patch: Binary or Parameters). Called once the scopes
    allowed the writes, so a caller without them learns nothing about the content."""
    for write in writes:
        sent = write.resource.get("resourceType") if write.resource is not None else None
        if write.method in ("POST", "PUT") and not isinstance(sent, str):
            raise _bad(f"a {write.method} entry needs a resource with a resourceType",
                       f"{write.where}.resource", code="required")  # fmt: skip
        if not isinstance(sent, str) or sent == write.resource_type:
            continue
        if write.method == "PATCH" and sent in _PATCH_BODIES:
            continue
        raise _bad(f"{write.where}: resource.resourceType {sent[:64]!r} does not match "
                   f"{write.resource_type!r}, the type request.url names (what the entry does)",
                   f"{write.where}.resource.resourceType")  # fmt: skip


def _parse_url(method: str, url: str, location: str) -> tuple[str, str | None, str | None]:
    """(type, id, query) of an entry's request.url, else 400 saying which shape it must have."""
    path, has_query, query = url.partition("?")
    parts = path.lstrip("/").split("/")
    if not RESOURCE_TYPE.fullmatch(parts[0]):
        raise _bad("request.url must name a resource type (relative to the base: Type, "
                   "Type/id or Type?criteria)", location, code="value")  # fmt: skip
    resource_id = parts[1] if len(parts) > 1 else None
    if ACTIONS[method] == "r":
        return parts[0], resource_id, query if has_query else None
    if method == "POST":
        shape_ok = len(parts) == 1 and not has_query
        shape = "the resource type (Type)"
    else:
        conditional = len(parts) == 1 and has_query and bool(query)
        shape_ok = conditional or (len(parts) == 2 and not has_query)
        shape = "Type/id or Type?criteria"
    if not shape_ok:
        raise _bad(f"a {method} entry's request.url is {shape}", location, code="value")
    if resource_id is not None and not RESOURCE_ID.fullmatch(resource_id):
        raise _bad("the id in request.url is not a valid FHIR id ([A-Za-z0-9-.]{1,64})",
                   location, code="value")  # fmt: skip
    return parts[0], resource_id, query if has_query else None
