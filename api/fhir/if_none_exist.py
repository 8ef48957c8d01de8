"""Conditional create (If-None-Exist, a Bundle entry's request.ifNoneExist): the search.

FHIR R4 (http.html#ccreate): the criteria are a search of the type. No match: the create
goes on; one match: nothing is written and the answer is that resource (200; a Bundle
entry resolves to it); several: 412 Precondition Failed. The gateway answers from its
store replica. A create that found no match gets the criteria's id
(api/write_targets.criteria_id), which the versioning stage makes create-only, so
concurrent identical requests converge on one resource with one version even though each
searched before any of them was stored. Without a store on this node the criteria are only
checked, and that same convergence holds. When that id already holds a resource that does
not match the criteria (edited since), the create takes a plain create's id instead, so
what the client sent is created rather than dropped; the event header IDS_HEADER tells the
processors what was resolved here (matches in a Bundle, and such fresh ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response

from api.errors import BadRequest, Forbidden, GatewayError
from api.fhir import write_answer
from api.fhir.audit import audit
from api.fhir.store_handle import StoreHandle
from api.fhir.write_requests import Write
from api.fhir.write_targets import Target, criteria_id
from api.fhir.write_wait import Applied
from api.security.auth import Principal
from api.security.scopes import Need
from api.security.smart import require_read
from projections.fhir_store import FhirStore, SearchError, StoredResource, StoreError
from schemas.outcome import Issue

# Search result parameters shape an answer, not which resources match
# (= processors.fhir_request.RESULT_PARAMS).
RESULT_PARAMS = frozenset({"_count", "_offset", "_sort", "_include", "_revinclude", "_summary",
                           "_elements", "_total", "_contained", "_containedType", "_format",
                           "_pretty"})  # fmt: skip
# Event header: {entry index: id} of the conditional creates resolved here: the one match,
# or "" when the criteria's own id holds a resource that does not match them (the create
# takes a plain create's id). = processors.fhir_request.IDS_HEADER; set here only, never
# copied from a client.
IDS_HEADER = "carelog.if-none-exist.ids"
Criteria = list[tuple[str, str]]


class PreconditionFailed(GatewayError):
    code = "multiple-matches"
    status = 412


@dataclass(frozen=True, slots=True)
class Conditions:
    """A write's conditional creates by entry index (0 for POST /fhir/{type}): their
    criteria, the one resource each matched (absent: no match, or no store here), and
    those that matched nothing while their criteria's id holds another resource."""

    criteria: dict[int, Criteria] = field(default_factory=dict)
    matches: dict[int, StoredResource] = field(default_factory=dict)
    taken: frozenset[int] = frozenset()

    @property
    def resolved_ids(self) -> dict[int, str]:
        """{entry index: the match's id, or "" for a create that takes a plain id}."""
        return {**{i: "" for i in self.taken}, **{i: r.id for i, r in self.matches.items()}}

    def event_headers(self) -> dict[str, str]:
        ids = {str(index): rid for index, rid in sorted(self.resolved_ids.items())}
        return {IDS_HEADER: orjson.dumps(ids).decode()} if ids else {}


def parse_criteria(criteria: Any, location: str) -> Criteria:
    """The search parameters of the criteria; 400 unless each is name=value and none is a
    result parameter (the processors refuse the same: processors.fhir_request)."""
    params = parse_qsl(criteria, keep_blank_values=True) if isinstance(criteria, str) else []
    bad = [n for n, v in params if not n or not v or n.split(":")[0] in RESULT_PARAMS]
    if not params or bad:
        raise BadRequest(Issue(
            f"conditional create criteria {str(criteria)[:128]!r} select nothing: expected "
            "search parameters such as 'identifier=system|value' (each name=value; no "
            "result parameters such as _count or _sort)",
            code="not-supported", location=location,
        ))  # fmt: skip
    return params


def _requested(writes: list[Write]) -> dict[int, tuple[str, Criteria, str]]:
    """{entry index (0 for POST /fhir/{type}): (type, criteria, location)} of the
    conditional creates among `writes` (api/fhir/write_requests.py's parse)."""
    out: dict[int, tuple[str, Criteria, str]] = {}
    for write in writes:
        if write.method != "POST" or write.criteria is None:
            continue
        where = "If-None-Exist" if write.entry is None else f"{write.where}.request.ifNoneExist"
        out[write.entry or 0] = (write.resource_type, parse_criteria(write.criteria, where), where)
    return out


def _match(store: FhirStore, resource_type: str, criteria: Criteria,
           location: str) -> StoredResource | None:  # fmt: skip
    try:
        found = store.search(resource_type, [*criteria, ("_count", "2"), ("_total", "none")])
    except SearchError as exc:
        raise BadRequest(Issue(f"{location}: {exc.param}: {exc.message}", code="invalid",
                               location=location)) from None  # fmt: skip
    if len(found.matches) > 1:
        raise PreconditionFailed(Issue(
            f"{location}: more than one {resource_type} matches these criteria, so a "
            "conditional create cannot tell which one is meant: make the criteria select "
            "one resource (e.g. identifier=system|value)",
            code="multiple-matches", location=location,
        ))  # fmt: skip
    return found.matches[0] if found.matches else None


async def resolve(handle: StoreHandle, writes: list[Write]) -> Conditions:
    """The conditional creates among a request's writes and their matches.

    Raises BadRequest (criteria that cannot be searched) or PreconditionFailed (several
    matches)."""
    requested = _requested(writes)
    if not requested:
        return Conditions()
    criteria = {index: params for index, (_, params, _) in requested.items()}
    try:
        store = handle.get()
    except StoreError:
        store = None
    if store is None:
        return Conditions(criteria)

    def search(s: FhirStore) -> Conditions:
        found = {i: _match(s, t, params, where) for i, (t, params, where) in requested.items()}
        matches = {i: stored for i, stored in found.items() if stored is not None}
        taken = frozenset(
            i for i, (t, params, _) in requested.items()
            if i not in matches and _held(s, t, criteria_id(t, params))
        )  # fmt: skip
        return Conditions(criteria, matches, taken)

    return await anyio.to_thread.run_sync(search, store)


def _held(store: FhirStore, resource_type: str, resource_id: str) -> bool:
    """A live resource has this id (so a create-only write to it would change nothing)."""
    current = store.read(resource_type, resource_id)
    return current is not None and not current.deleted


def _readable(principal: Principal, resource_type: str, checked: bool) -> bool:
    """May this token read the matched resource (else the answer leaves its body out)?"""
    if principal.patient is not None:
        return False  # a compartment-bound token: the match may lie outside it
    try:
        require_read(principal, [Need(resource_type, "r")], checked)
    except Forbidden:
        return False
    return True


async def answer_match(request: Request, principal: Principal, stored: StoredResource,
                       media: str, checked: bool) -> Response:  # fmt: skip
    """POST /fhir/{type} whose criteria matched `stored`: 200 with it, nothing written.

    The body (per Prefer) only goes to a token that may read the type; the read is audited.
    """
    readable = _readable(principal, stored.resource_type, checked)
    if readable:
        await audit(request, principal, "read", [stored.key])
    target = Target(stored.resource_type, stored.id, "POST", None, if_none_exist=True)
    applied = Applied([(stored, False)])
    return write_answer.single(request, target, applied, None, media, readable)
