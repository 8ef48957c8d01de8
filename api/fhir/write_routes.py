"""FHIR writes: create, update, delete and transaction/batch Bundles, appended as events.

Nothing is applied here: each write becomes one InboundMessage (format fhir) whose headers
carry the HTTP method, path and conditional headers, so that processors can tell create from
update from delete. Once the broker confirmed it, the route waits until the FHIR store shows
what the write did and answers as a FHIR server does (api/fhir/write_wait.py, api/fhir/write_answer.py:
201/200/204 with Location and ETag, a transaction-response, or the downstream rejection's
OperationOutcome). It answers 202 with the event id (X-Event-Id) at once with
`Prefer: respond-async`, when CARELOG_FHIR_WRITE_WAIT_SECONDS is 0 or no store exists on
this node, and after that wait when the store has not shown the write yet.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.access import EVENT_ID_KEY
from api.errors import GatewayError, json_response
from api.fhir import if_none_exist, write_answer, write_targets
from api.fhir.checks import check_id, check_resource, check_type, parse_resource
from api.fhir.store_handle import store_of
from api.fhir.write_requests import Write, bundle_writes, check_resources, need_of, single_write
from api.fhir.write_wait import Applied, Refused, wait_for
from api.gateway import gateway_of, request_id
from api.preamble import Admitted, Intake
from api.security.scopes import Need
from projections.fhir_store import FhirStore, StoreError
from schemas.events import Channel, Format, InboundMessage
from schemas.outcome import Issue, operation_outcome
from streams.keys import inbound_key
from streams.privacy.envelope import sole_patient

CONTENT_TYPES = ("application/fhir+json", "application/json")
# Request headers that change what a write means; they travel with the event.
CONDITIONAL_HEADERS = ("if-match", "if-none-exist", "if-none-match", "if-modified-since", "prefer")


def _single_write(request: Request) -> Write:
    """The write a /fhir/{type}[/{id}] request asks for (not a Bundle)."""
    params = request.path_params
    criteria = request.headers.get("if-none-exist")
    none_match = request.headers.get("if-none-match", "").strip() == "*"
    return single_write(request.method, params["type"], params.get("id"), criteria, none_match)


def _needs(request: Request) -> list[Need]:
    # A Bundle's needs are its entries': the route checks them once it has read the body.
    return [need_of(_single_write(request))] if "type" in request.path_params else []


INTAKE = Intake(Format.fhir, CONTENT_TYPES, CONTENT_TYPES, needs=_needs)


@INTAKE.route
async def write(call: Admitted) -> Response:
    """Create (POST /fhir/{type}), update (PUT /fhir/{type}/{id}), delete (DELETE
    /fhir/{type}/{id}) or a transaction/batch Bundle (POST /fhir)."""
    request, gw, body, answer_type = call.request, call.gateway, call.body, call.answer_type
    principal = call.principal
    params = request.path_params
    resource_type: str | None = params.get("type")
    resource_id: str | None = params.get("id")
    # What will be done: the scope check and the wait both read it.
    writes = [_single_write(request)] if resource_type is not None else []
    resource: dict[str, Any] | None = None
    conditions = if_none_exist.Conditions()
    try:
        if resource_type is not None:
            check_type(resource_type)
        if resource_id is not None:
            check_id(resource_id)
        if request.method != "DELETE":
            resource = parse_resource(body)
            if resource_type is None:
                writes = bundle_writes(resource)
                # A 403 or 405 here passes through refuse() unrecorded (not a refusal of content).
                gw.guard.require(principal, [need_of(w) for w in writes])
                check_resources(writes)
            else:
                check_resource(
                    resource, resource_type, resource_id if request.method == "PUT" else None
                )
                writes = [replace(writes[0], resource=resource)]
        if request.method == "POST":
            conditions = await if_none_exist.resolve(store_of(request), writes)
    except GatewayError as exc:
        raise await call.refuse(exc) from None
    if resource_type is not None and 0 in conditions.matches:  # found: nothing to write
        checked = gw.guard.verifier is not None
        return await if_none_exist.answer_match(
            request, principal, conditions.matches[0], answer_type, checked
        )

    event = InboundMessage.received(
        body, channel=Channel.http, format=Format.fhir,
        content_type=request.headers.get("content-type", CONTENT_TYPES[0]),
        sender=call.sender, idempotency_key=request.headers.get("idempotency-key"),
        correlation_id=request_id(request),
        headers={**_event_headers(request), **conditions.event_headers()},
    )  # fmt: skip
    # One resource about one patient is sealed with that patient's key (when it has one).
    owner = (
        sole_patient(resource_type, resource_id, body.decode())
        if resource_type is not None and resource is not None
        else None
    )
    delivered = await gw.append(event, inbound_key(Format.fhir, body, call.sender), owner)
    request.scope[EVENT_ID_KEY] = event.event_id
    store = _store_to_wait_on(request)
    if store is not None:
        resolved = conditions.resolved_ids
        entries = [write_targets.target_of(w, event.event_id, resolved.get(index))
                   for index, w in enumerate(writes)]  # fmt: skip
        targets = [t for t in entries if t is not None]
        outcome = await wait_for(store, event.event_id, targets, gw.settings)
        if isinstance(outcome, Refused):
            return write_answer.refused(outcome.rejection, event.event_id)
        if isinstance(outcome, Applied):
            if resource_type is None:
                assert resource is not None
                kind = str(resource.get("type"))
                return write_answer.bundle(request, kind, entries, outcome, event.event_id,
                                           answer_type)  # fmt: skip
            return write_answer.single(request, targets[0], outcome, event.event_id, answer_type)
    waited = " the FHIR store has not shown it yet;" if store is not None else ""
    outcome_body = operation_outcome(Issue(
        f"accepted: appended as event {event.event_id} to {delivered.topic};{waited} "
        "the FHIR store applies it asynchronously",
        code="informational", severity="information",
    ))  # fmt: skip
    response = json_response(outcome_body, 202, {"X-Event-Id": event.event_id})
    response.headers["content-type"] = answer_type
    return response


def _store_to_wait_on(request: Request) -> FhirStore | None:
    """The store to watch for this write, or None to answer 202 at once."""
    if gateway_of(request).settings.fhir.write_wait_seconds <= 0:
        return None
    if "respond-async" in request.headers.get("prefer", ""):
        return None
    try:
        return store_of(request).get()
    except StoreError:
        return None


def _event_headers(request: Request) -> dict[str, str]:
    headers = {"http.method": request.method, "http.path": request.url.path}
    if request.url.query:
        headers["http.query"] = request.url.query
    for name in CONDITIONAL_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[f"http.{name}"] = value
    return headers


routes = [
    Route("/fhir", write, methods=["POST"]),
    Route("/fhir/{type}", write, methods=["POST"]),
    Route("/fhir/{type}/{id}", write, methods=["PUT"]),
    Route("/fhir/{type}/{id}", write, methods=["DELETE"]),
]
