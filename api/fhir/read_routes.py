"""FHIR reads from the store: read, vread, and instance, type and system history.

GET /fhir/{type}/{id}                      read (ETag, Last-Modified, 304, 404, 410)
GET /fhir/{type}/{id}/_history/{vid}       vread
GET /fhir/{type}/{id}/_history             instance history
GET /fhir/{type}/_history, /fhir/_history  type and system history (_since, _count, _offset)

`_at` (api/fhir/point_in_time.py) reads the version current at that time (404 before the
resource existed, 410 while it was deleted); on history it keeps the versions that were
current at some moment of the given period.

Every answer that shows data appends an AuditEvent (api/fhir/audit.py). A token limited to a
patient's compartment sees, of a resource in it, only the versions that were in it too
(api/security/read_access.py): others answer 404 on vread and are neither listed nor counted in
the instance history; type and system history are refused to it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import BadRequest, Forbidden
from api.fhir.audit import audit
from api.fhir.bundles import base_url, history, page_url
from api.fhir.checks import check_id, check_type
from api.fhir.http import answer_type, resource_response
from api.fhir.point_in_time import at_range
from api.fhir.store_handle import store_of
from api.security.read_access import Gone, NotFound, admit_read, check_visible
from projections.fhir_store import SearchError, StoredResource
from projections.fhir_store.search_limits import (
    MAX_HISTORY_COUNT,
    MAX_OFFSET,
    MAX_VERSION,
    whole_number,
)
from schemas.outcome import Issue

DEFAULT_HISTORY_COUNT = 50
_HISTORY_PARAMS = {"_since", "_at", "_count", "_offset", "_format", "_pretty"}


def _whole_number(param: str, value: str, high: int) -> int:
    """`value` as an integer in [0, high], else 400 naming `param` and the limit."""
    try:
        return whole_number(param, value, 0, high)
    except SearchError as exc:
        raise BadRequest(Issue(exc.message, code="value", location=exc.param)) from None


def _found(resource: StoredResource | None, what: str) -> StoredResource:
    if resource is None:
        raise NotFound(f"{what} is not known")
    if resource.deleted:
        raise Gone(f"{what} was deleted (version {resource.version})")
    return resource


async def read(request: Request) -> Response:
    """GET /fhir/{type}/{id}."""
    rtype, rid = request.path_params["type"], request.path_params["id"]
    reader = await admit_read(request, [rtype], "r")
    media = answer_type(request)
    check_type(rtype)
    check_id(rid)
    at = at_range(request)
    store = store_of(request).require()
    current = store.read(rtype, rid)
    stored = current if at is None else store.read_at(rtype, rid, at[1])
    # first: a deleted one is not shown as 410 to it
    check_visible(store, reader, rtype, rid, current)
    if at is not None and stored is not None and reader.compartment is not None:
        stored = store.vread(rtype, rid, stored.version, reader.compartment)  # in it then?
    resource = _found(
        stored, f"{rtype}/{rid}" + (f" at {request.query_params['_at']}" if at else "")
    )
    await audit(request, reader.principal, "read", [resource.key])
    return resource_response(request, resource, media)


async def vread(request: Request) -> Response:
    """GET /fhir/{type}/{id}/_history/{vid}."""
    rtype, rid, vid = (request.path_params[k] for k in ("type", "id", "vid"))
    reader = await admit_read(request, [rtype], "r")
    media = answer_type(request)
    check_type(rtype)
    check_id(rid)
    if not (vid.isascii() and vid.isdigit()):
        raise NotFound(f"{rtype}/{rid} has no version {vid[:20]!r}: versions are numbers")
    version = _whole_number("vid", vid, MAX_VERSION)
    if "_at" in request.query_params:  # never ignored: the version is named already
        raise BadRequest(Issue("_at is for a read (GET {type}/{id}?_at=) or a history, not "
                               "a vread of a named version", code="not-supported",
                               location="_at"))  # fmt: skip
    store = store_of(request).require()
    check_visible(store, reader, rtype, rid, store.read(rtype, rid))
    found = store.vread(rtype, rid, version, reader.compartment)  # None: not in it then
    resource = _found(found, f"{rtype}/{rid}/_history/{vid}")
    await audit(request, reader.principal, "vread", [f"{resource.key}/_history/{resource.version}"])
    return resource_response(request, resource, media)


def _history_args(request: Request) -> tuple[datetime | None, int, int, tuple[int, int] | None]:
    params = request.query_params
    unknown = sorted(set(params) - _HISTORY_PARAMS)
    if unknown:
        raise BadRequest(f"history does not support {', '.join(unknown)}; it takes _since, "
                         "_at, _count and _offset")  # fmt: skip
    since = None
    if "_since" in params:
        try:
            since = datetime.fromisoformat(params["_since"].replace("Z", "+00:00"))
            since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        except (ValueError, OverflowError):  # OverflowError: beyond year 1..9999 in UTC
            raise BadRequest("_since must be an instant (2024-01-02T03:04:05Z)") from None
    count = _whole_number("_count", params.get("_count", str(DEFAULT_HISTORY_COUNT)),
                          MAX_HISTORY_COUNT)  # fmt: skip
    offset = _whole_number("_offset", params.get("_offset", "0"), MAX_OFFSET)
    return since, count, offset, at_range(request)


async def _history(request: Request, rtype: str | None, rid: str | None) -> Response:
    reader = await admit_read(request, [rtype or "*"], "r")
    media = answer_type(request)
    if rtype is not None:
        check_type(rtype)
    if rid is not None:
        check_id(rid)
    since, count, offset, at = _history_args(request)
    handle = store_of(request)
    store = handle.require()
    if reader.compartment is not None:
        if rid is None:
            raise Forbidden("type and system history are not available to a token limited to "
                            "a patient's compartment; ask for one resource's history")  # fmt: skip
        assert rtype is not None
        check_visible(store, reader, rtype, rid, store.read(rtype, rid))
    versions, total = await handle.run(
        lambda s: s.history(rtype, rid, since, count, offset, reader.compartment, at)
    )
    if rid is not None and total == 0 and (at is None or store.read(rtype or "", rid) is None):
        raise NotFound(f"{rtype}/{rid} is not known")
    base = base_url(request)
    url = "/".join(p for p in (base, rtype, rid, "_history") if p)
    params = list(request.query_params.multi_items())
    links = [("self", page_url(url, params, offset or None))]
    if offset + len(versions) < total and count > 0:
        links.append(("next", page_url(url, params, offset + len(versions))))
    interaction = "history-instance" if rid else "history-type" if rtype else "history-system"
    await audit(request, reader.principal, interaction,
                [f"{v.key}/_history/{v.version}" for v in versions])  # fmt: skip
    return Response(history(base, versions, total, links), 200, media_type=media)


async def instance_history(request: Request) -> Response:
    """GET /fhir/{type}/{id}/_history."""
    return await _history(request, request.path_params["type"], request.path_params["id"])


async def type_history(request: Request) -> Response:
    """GET /fhir/{type}/_history."""
    return await _history(request, request.path_params["type"], None)


async def system_history(request: Request) -> Response:
    """GET /fhir/_history."""
    return await _history(request, None, None)


routes = [
    Route("/fhir/_history", system_history, methods=["GET"]),
    Route("/fhir/{type}/_history", type_history, methods=["GET"]),
    Route("/fhir/{type}/{id}/_history", instance_history, methods=["GET"]),
    Route("/fhir/{type}/{id}/_history/{vid}", vread, methods=["GET"]),
    Route("/fhir/{type}/{id}", read, methods=["GET"]),
]
