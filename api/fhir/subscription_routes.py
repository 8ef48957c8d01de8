"""Subscription operations answered by `carelog notifier` (its control port, never public;
the gateway sends the port's credential, `Gateway.notifier_credential`).

GET /fhir/Subscription/{id}/$status                 SubscriptionStatus (backport IG): status,
                                                    eventsSinceSubscriptionStart, last error
GET|POST /fhir/Subscription/{id}/$get-ws-binding-token
                                                    a token and the websocket URL to bind it on

The caller needs read access to Subscription (as for reading it); the gateway checks that,
then asks the notifier, which holds each subscription's state.
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import GatewayError, Unavailable, json_response
from api.fhir.checks import check_id
from api.gateway import gateway_of
from api.security.read_access import NotFound, admit_read


async def _ask_notifier(request: Request, method: str, what: str) -> dict[str, object]:
    await admit_read(request, ["Subscription"], "r")
    sub_id = request.path_params["id"]
    check_id(sub_id)
    gateway = gateway_of(request)
    url = f"{gateway.settings.notifier.url.rstrip('/')}/{what}/{sub_id}"
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            answer = await client.request(
                method, url, headers={"Authorization": gateway.notifier_credential}
            )
    except httpx.HTTPError:
        raise Unavailable("the notifier does not answer; try again later") from None
    try:
        body: dict[str, object] = answer.json()
    except ValueError:
        raise Unavailable("the notifier answered something else than JSON") from None
    if answer.status_code == 404:
        raise NotFound(str(body.get("error")))
    if answer.status_code != 200:
        raise GatewayError(str(body.get("error")))
    return body


async def status(request: Request) -> Response:
    return json_response(await _ask_notifier(request, "GET", "status"), 200)


async def binding_token(request: Request) -> Response:
    body = await _ask_notifier(request, "POST", "token")
    expires = datetime.fromtimestamp(float(str(body["expires"])), UTC)
    return json_response({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "token", "valueString": body["token"]},
            {"name": "expiration", "valueDateTime": expires.isoformat(timespec="seconds")},
            {"name": "subscription", "valueString": body["subscription"]},
            {"name": "websocket-url", "valueUrl": body["websocket-url"]},
        ],
    }, 200)  # fmt: skip


routes = [
    Route("/fhir/Subscription/{id}/$status", status, methods=["GET"]),
    Route("/fhir/Subscription/{id}/$get-ws-binding-token", binding_token, methods=["GET", "POST"]),
]
