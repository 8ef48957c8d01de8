"""FHIR search and Patient/$everything from the store.

GET /fhir/{type}?params and POST /fhir/{type}/_search (form body, plus any URL params)
answer a searchset Bundle: matches, then what _include/_revinclude added, the total, and
self/next links (next carries _offset; the order is stable while the store does not
change). A token limited to a patient searches within that compartment, and what an
_include brings from outside it, or of a type the token cannot read, is left out
(api/security/read_access.py). With `_at` (a point in time, api/fhir/point_in_time.py) the search runs on
the version history: it takes _id, _count and _offset only (the search indexes hold the
current versions), anything else answers 400. GET /fhir/Patient/{id}/$everything answers
the patient and its compartment (one Bundle, _type limits the types).
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.body import read_body
from api.errors import BadRequest, Forbidden, GatewayError
from api.fhir.audit import audit
from api.fhir.bundles import base_url, page_url, searchset
from api.fhir.checks import check_id, check_type
from api.fhir.http import answer_type
from api.fhir.point_in_time import date_range_of
from api.fhir.store_handle import store_of
from api.gateway import gateway_of
from api.negotiation import require_content_type
from api.security.read_access import (
    Gone,
    NotFound,
    Reader,
    admit_read,
    readable,
    refuse_hidden,
    without_denied,
)
from api.security.scopes import Need
from api.security.smart import require_read
from projections.fhir_store import FhirStore, SearchError, SearchResult, StoredResource
from projections.fhir_store.search_limits import MAX_OFFSET, whole_number
from schemas.outcome import Issue

_FORM = "application/x-www-form-urlencoded"


def _search_error(exc: SearchError) -> GatewayError:
    return BadRequest(Issue(exc.message, code="invalid", location=exc.param))


async def _params(request: Request) -> list[tuple[str, str]]:
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        require_content_type(request, (_FORM,))
        body = await read_body(request, gateway_of(request).settings.gateway.max_request_bytes)
        try:
            params += parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise BadRequest("the _search form body is not UTF-8") from None
    return params


async def search(request: Request) -> Response:
    """GET /fhir/{type} and POST /fhir/{type}/_search."""
    rtype = request.path_params["type"]
    reader = await admit_read(request, [rtype], "s")
    media = answer_type(request)
    check_type(rtype)
    params = await _params(request)
    if any(k == "_at" for k, _ in params):
        return await _search_at(request, reader, rtype, params, media)
    compartment = reader.compartment
    handle = store_of(request)
    store = handle.require()
    if compartment is not None and rtype != "Patient" and rtype not in store.compartment_params():
        raise Forbidden(f"this token is limited to Patient/{compartment[1]}'s compartment, "
                        f"which holds no {rtype} resources")  # fmt: skip

    def run(s: FhirStore) -> tuple[SearchResult, list[StoredResource]]:
        result = s.search(rtype, params, compartment)
        result = replace(result, matches=without_denied(s, reader, result.matches))
        return result, readable(s, reader, result.included)

    try:
        result, included = await handle.run(run)
    except SearchError as exc:
        raise _search_error(exc) from None
    base = base_url(request)
    url = f"{base}/{rtype}"
    offset = next((int(v) for k, v in params if k == "_offset" and v.isdigit()), 0)
    links = [("self", page_url(url, params, offset or None))]
    if result.next_offset is not None:
        links.append(("next", page_url(url, params, result.next_offset)))
    refs = [r.key for r in result.matches] + [r.key for r in included]
    await audit(request, reader.principal, "search-type", refs, f"{rtype}?{urlencode(params)}")
    body = searchset(base, result.matches, included, result.total, links)
    return Response(body, 200, media_type=media)


_AT_PARAMS = frozenset({"_at", "_id", "_count", "_offset", "_format", "_pretty"})
DEFAULT_AT_COUNT = 50
MAX_AT_COUNT = 1000


async def _search_at(request: Request, reader: Reader, rtype: str,
                     params: list[tuple[str, str]], media: str) -> Response:  # fmt: skip
    """A search as of `_at`: the resources of the type that existed then, as they were."""
    unknown = sorted({k for k, _ in params} - _AT_PARAMS)
    if unknown:
        raise BadRequest(Issue(f"a search with _at takes only _id, _count and _offset (the "
                               f"version history is not indexed), not {', '.join(unknown)}",
                               code="not-supported", location=unknown[0]))  # fmt: skip
    if reader.compartment is not None:
        raise Forbidden("a search with _at is not available to a token limited to a patient's "
                        "compartment; read one resource with _at instead")  # fmt: skip
    values = {k: [v for key, v in params if key == k] for k in ("_at", "_id", "_count", "_offset")}
    if any(len(v) > 1 for v in values.values()):
        raise BadRequest("with _at, each parameter may be given once")
    at = date_range_of(values["_at"][0])
    ids = [i for i in values["_id"][0].split(",") if i] if values["_id"] else None
    try:
        count = whole_number("_count", (values["_count"] or [str(DEFAULT_AT_COUNT)])[0], 0,
                             MAX_AT_COUNT)  # fmt: skip
        offset = whole_number("_offset", (values["_offset"] or ["0"])[0], 0, MAX_OFFSET)
    except SearchError as exc:
        raise _search_error(exc) from None
    matches, total = await store_of(request).run(
        lambda s: s.search_at(rtype, at[1], ids, count, offset)
    )
    base = base_url(request)
    url = f"{base}/{rtype}"
    links = [("self", page_url(url, params, offset or None))]
    if offset + len(matches) < total and count > 0:
        links.append(("next", page_url(url, params, offset + len(matches))))
    await audit(request, reader.principal, "search-type", [r.key for r in matches],
          f"{rtype}?{urlencode(params)}")  # fmt: skip
    return Response(searchset(base, matches, [], total, links), 200, media_type=media)


async def everything(request: Request) -> Response:
    """GET /fhir/Patient/{id}/$everything."""
    pid = request.path_params["id"]
    reader = await admit_read(request, ["Patient"], "r")
    media = answer_type(request)
    check_id(pid)
    if "_at" in request.query_params:  # never ignored: it answers the current state only
        raise BadRequest(Issue("$everything does not support _at", code="not-supported",
                               location="_at"))  # fmt: skip
    types = [t for v in request.query_params.getlist("_type") for t in v.split(",") if t]
    handle = store_of(request)
    store = handle.require()
    if reader.compartment is not None and reader.compartment[1] != pid:
        raise NotFound(f"Patient/{pid} is not known in this patient's compartment")
    for rtype in types:
        check_type(rtype)
    refuse_hidden(reader, types)
    compartment_types = {"Patient", *store.compartment_params()}
    wanted = types or sorted(t for t in compartment_types if not reader.hides(t))
    # Every type returned must be readable with the token's scopes.
    require_read(reader.principal, [Need(t, "r") for t in wanted], reader.scopes_checked)
    patient = store.read("Patient", pid)
    if patient is None:
        raise NotFound(f"Patient/{pid} is not known")
    if patient.deleted:
        raise Gone(f"Patient/{pid} was deleted")
    items = await handle.run(
        lambda s: without_denied(s, reader, s.patient_compartment(pid, wanted))
    )
    base = base_url(request)
    links = [("self", page_url(f"{base}/Patient/{pid}/$everything",
                               list(request.query_params.multi_items())))]  # fmt: skip
    await audit(
        request, reader.principal, "operation", [r.key for r in items], f"Patient/{pid}/$everything"
    )
    return Response(searchset(base, items, [], len(items), links), 200, media_type=media)


routes = [
    Route("/fhir/Patient/{id}/$everything", everything, methods=["GET"]),
    Route("/fhir/{type}/_search", search, methods=["POST"]),
    Route("/fhir/{type}", search, methods=["GET"]),
]
