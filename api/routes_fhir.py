"""FHIR writes: create, update, delete and transaction/batch Bundles, appended as events.

Nothing is applied here: each write becomes one InboundMessage (format fhir) whose headers
carry the HTTP method, path and conditional headers, so that processors can tell create from
update from delete. The answer is 202 with the event id (X-Event-Id).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.access import EVENT_ID_KEY
from api.body import read_body
from api.errors import GatewayError, json_response
from api.fhir_checks import bundle_needs, check_id, check_resource, check_type, parse_resource
from api.gateway import gateway_of, request_id
from api.negotiation import negotiate, require_content_type
from api.scopes import Need
from schemas.events import Channel, Format, InboundMessage
from schemas.outcome import Issue, operation_outcome
from streams.keys import inbound_key

CONTENT_TYPES = ("application/fhir+json", "application/json")
# Request headers that change what a write means; they travel with the event.
CONDITIONAL_HEADERS = ("if-match", "if-none-exist", "if-none-match", "if-modified-since", "prefer")
_ACTION = {"POST": "c", "PUT": "u", "DELETE": "d"}


async def _write(request: Request) -> Response:
    gw = gateway_of(request)
    principal = await gw.guard.admit(request)
    answer_type = negotiate(request, CONTENT_TYPES)
    params = request.path_params
    resource_type: str | None = params.get("type")
    resource_id: str | None = params.get("id")
    if resource_type is not None:  # the Bundle route checks per entry, once it has the body
        gw.guard.require(principal, [Need(resource_type, _ACTION[request.method])])
    body = b""
    try:
        if request.method != "DELETE":
            body = await read_body(request, gw.settings.max_request_bytes)
            require_content_type(request, CONTENT_TYPES)
        if resource_type is not None:
            check_type(resource_type)
        if resource_id is not None:
            check_id(resource_id)
        if request.method != "DELETE":
            resource = parse_resource(body)
            if resource_type is None:
                # A 403 here passes through refuse() unrecorded (not a refusal of content).
                gw.guard.require(principal, bundle_needs(resource))
            else:
                check_resource(
                    resource, resource_type, resource_id if request.method == "PUT" else None
                )
    except GatewayError as exc:
        raise await gw.refuse(
            exc, body, request, format=Format.fhir, sender=principal.subject
        ) from None

    event = InboundMessage.received(
        body, channel=Channel.http, format=Format.fhir,
        content_type=request.headers.get("content-type", CONTENT_TYPES[0]),
        sender=principal.subject, idempotency_key=request.headers.get("idempotency-key"),
        correlation_id=request_id(request), headers=_event_headers(request),
    )  # fmt: skip
    delivered = await gw.append(event, inbound_key(Format.fhir, body, principal.subject))
    request.scope[EVENT_ID_KEY] = event.event_id
    outcome = operation_outcome(Issue(
        f"accepted: appended as event {event.event_id} to {delivered.topic}; "
        "the FHIR store applies it asynchronously",
        code="informational", severity="information",
    ))  # fmt: skip
    response = json_response(outcome, 202, {"X-Event-Id": event.event_id})
    response.headers["content-type"] = answer_type
    return response


def _event_headers(request: Request) -> dict[str, str]:
    headers = {"http.method": request.method, "http.path": request.url.path}
    if request.url.query:
        headers["http.query"] = request.url.query
    for name in CONDITIONAL_HEADERS:
        value = request.headers.get(name)
        if value is not None:
            headers[f"http.{name}"] = value
    return headers


async def create(request: Request) -> Response:
    """Create a resource: POST /fhir/{type}."""
    return await _write(request)


async def update(request: Request) -> Response:
    """Update (or create with a client id) a resource: PUT /fhir/{type}/{id}."""
    return await _write(request)


async def delete(request: Request) -> Response:
    """Delete a resource: DELETE /fhir/{type}/{id}."""
    return await _write(request)


async def bundle(request: Request) -> Response:
    """A transaction or batch Bundle: POST /fhir."""
    return await _write(request)


routes = [
    Route("/fhir", bundle, methods=["POST"]),
    Route("/fhir/{type}", create, methods=["POST"]),
    Route("/fhir/{type}/{id}", update, methods=["PUT"]),
    Route("/fhir/{type}/{id}", delete, methods=["DELETE"]),
]
