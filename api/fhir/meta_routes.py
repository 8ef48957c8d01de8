"""What the server says about itself: /fhir/metadata and the SMART configuration.
Neither needs a token (clients read them to learn how to get one)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.errors import json_response
from api.fhir.bundles import base_url
from api.fhir.capability import capability_statement, smart_configuration
from api.fhir.http import answer_type
from api.fhir.store_handle import store_of
from api.gateway import gateway_of


async def metadata(request: Request) -> Response:
    """GET /fhir/metadata: the CapabilityStatement."""
    media = answer_type(request)
    store = store_of(request).get()
    body = capability_statement(store, gateway_of(request).settings, base_url(request))
    response = json_response(body, 200)
    response.headers["content-type"] = media
    return response


async def smart(request: Request) -> Response:
    """GET /.well-known/smart-configuration (also under /fhir)."""
    body = smart_configuration(gateway_of(request).settings)
    response = json_response(body, 200)
    response.headers["content-type"] = "application/json"
    return response


routes = [
    Route("/fhir/metadata", metadata, methods=["GET"]),
    Route("/.well-known/smart-configuration", smart, methods=["GET"]),
    Route("/fhir/.well-known/smart-configuration", smart, methods=["GET"]),
]
