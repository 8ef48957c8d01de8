"""FHIR search and Patient/$everything from the store.

GET /fhir/{type}?params and POST /fhir/{type}/_search (form body, plus any URL params)
answer a searchset Bundle: matches, then what _include/_revinclude added, the total, and
self/next links (next carries _offset; the order is stable while the store does not
change). A token limited to a patient searches within that compartment, and what an
_include brings from outside it is left out. GET /fhir/Patient/{id}/$everything answers
the patient and its compartment (one Bundle, _type limits the types).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.audit import audit
from api.body import read_body
from api.errors import BadRequest, Forbidden, GatewayError
from api.fhir_bundles import base_url, page_url, searchset
from api.fhir_checks import check_id, check_type
from api.fhir_http import answer_type
from api.gateway import gateway_of
from api.negotiation import require_content_type
from api.read_access import Gone, NotFound, Reader, admit_read
from api.scopes import Need
from api.smart import require_read
from api.store_handle import store_of
from projections.fhir_store import FhirStore, SearchError, SearchResult, StoredResource
from projections.fhir_store.search_limits import MAX_OR_VALUES
from schemas.outcome import Issue

_FORM = "application/x-www-form-urlencoded"


def _search_error(exc: SearchError) -> GatewayError:
    return BadRequest(Issue(exc.message, code="invalid", location=exc.param))


def _visible(store: FhirStore, reader: Reader, items: list[StoredResource]) -> list[StoredResource]:
    """What of `items` the reader's compartment holds (all of it without one)."""
    compartment = reader.compartment
    if compartment is None or not items:
        return items
    by_type: dict[str, list[StoredResource]] = {}
    for item in items:
        by_type.setdefault(item.resource_type, []).append(item)
    kept: set[str] = set()
    for rtype, group in by_type.items():
        if rtype != "Patient" and rtype not in store.compartment_params():
            continue
        for start in range(0, len(group), MAX_OR_VALUES):
            ids = ",".join(r.id for r in group[start : start + MAX_OR_VALUES])
            found = store.search(rtype, [("_id", ids), ("_total", "none"),
                                         ("_count", str(MAX_OR_VALUES))], compartment)  # fmt: skip
            kept.update(r.key for r in found.matches)
    return [i for i in items if i.key in kept]


async def _params(request: Request) -> list[tuple[str, str]]:
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        require_content_type(request, (_FORM,))
        body = await read_body(request, gateway_of(request).settings.max_request_bytes)
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
    compartment = reader.compartment
    handle = store_of(request)
    store = handle.require()
    if compartment is not None and rtype != "Patient" and rtype not in store.compartment_params():
        raise Forbidden(f"this token is limited to Patient/{compartment[1]}'s compartment, "
                        f"which holds no {rtype} resources")  # fmt: skip

    def run(s: FhirStore) -> tuple[SearchResult, list[StoredResource]]:
        result = s.search(rtype, params, compartment)
        return result, _visible(s, reader, result.included)

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
    audit(request, reader.principal, "search-type", refs, f"{rtype}?{urlencode(params)}")
    body = searchset(base, result.matches, included, result.total, links)
    return Response(body, 200, media_type=media)


async def everything(request: Request) -> Response:
    """GET /fhir/Patient/{id}/$everything."""
    pid = request.path_params["id"]
    reader = await admit_read(request, ["Patient"], "r")
    media = answer_type(request)
    check_id(pid)
    types = [t for v in request.query_params.getlist("_type") for t in v.split(",") if t]
    handle = store_of(request)
    store = handle.require()
    if reader.compartment is not None and reader.compartment[1] != pid:
        raise NotFound(f"Patient/{pid} is not known in this patient's compartment")
    for rtype in types:
        check_type(rtype)
    wanted = types or sorted({"Patient", *store.compartment_params()})
    # Every type returned must be readable with the token's scopes.
    require_read(reader.principal, [Need(t, "r") for t in wanted],
                 gateway_of(request).guard.verifier is not None)  # fmt: skip
    patient = store.read("Patient", pid)
    if patient is None:
        raise NotFound(f"Patient/{pid} is not known")
    if patient.deleted:
        raise Gone(f"Patient/{pid} was deleted")
    items = await handle.run(lambda s: s.patient_compartment(pid, types or None))
    base = base_url(request)
    links = [("self", page_url(f"{base}/Patient/{pid}/$everything",
                               list(request.query_params.multi_items())))]  # fmt: skip
    audit(
        request, reader.principal, "operation", [r.key for r in items], f"Patient/{pid}/$everything"
    )
    return Response(searchset(base, items, [], len(items), links), 200, media_type=media)


routes = [
    Route("/fhir/Patient/{id}/$everything", everything, methods=["GET"]),
    Route("/fhir/{type}/_search", search, methods=["POST"]),
    Route("/fhir/{type}", search, methods=["GET"]),
]
