"""The gateway app: routes, middleware and shared state wired together, nothing else.

Routes come from the modules in INGEST_ROUTE_MODULES (HL7 v2, FHIR writes, device readings,
DICOMweb STOW-RS) and FHIR_READ_ROUTE_MODULES (metadata, read, search), each providing
`routes`, plus the probes; POST /hl7v2 is tried first, as the busiest route. The OpenAPI
document is api/openapi.py's paths, the STOW-RS paths (routes_dicom.openapi_paths) and the
FHIR reads merged in; create_app's `extra_routes` / `extra_paths` add more. Refusals
(GatewayError), 404/405 and unexpected errors are all answered as OperationOutcomes.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from api import routes_probes
from api.access import AccessMiddleware
from api.devices import routes as routes_devices
from api.dicomweb import routes as routes_dicom
from api.errors import GatewayError, gateway_error_handler, json_response
from api.fhir import bulk_export_routes as routes_bulk_export
from api.fhir import erase_routes as routes_erase
from api.fhir import meta_routes as routes_fhir_meta
from api.fhir import read_routes as routes_fhir_read
from api.fhir import search_routes as routes_fhir_search
from api.fhir import subscription_routes as routes_fhir_subscription
from api.fhir import write_routes as routes_fhir
from api.fhir.openapi_reads import merge_reads
from api.fhir.store_handle import StoreHandle
from api.gateway import Gateway
from api.hl7v2 import routes as routes_hl7v2
from api.metrics import GatewayMetrics
from api.openapi import openapi_document
from api.security.auth import verifier_from_settings
from api.security.guard import Guard
from api.security.rate_limit import RateLimiter
from schemas.outcome import Issue, operation_outcome
from streams.producer import EventProducer
from streams.settings import Settings, get_settings

INGEST_ROUTE_MODULES: tuple[Any, ...] = (routes_hl7v2, routes_fhir, routes_devices, routes_dicom)
# FHIR REST reads from the store; before the writes, whose /fhir/{type}/{id} they refine.
FHIR_READ_ROUTE_MODULES: tuple[Any, ...] = (
    routes_bulk_export,  # first: /fhir/$export would otherwise be taken for a search
    routes_erase,  # POST /fhir/Patient/{id}/$erase (api/erasure/)
    routes_fhir_subscription,
    routes_fhir_meta,
    routes_fhir_read,
    routes_fhir_search,
)


async def _http_error(request: Request, exc: Exception) -> Response:
    """404/405 and friends as OperationOutcomes, like every other refusal."""
    assert isinstance(exc, HTTPException)
    code = "not-found" if exc.status_code == 404 else "not-supported"
    body = operation_outcome(Issue(str(exc.detail), code=code))
    return json_response(body, exc.status_code, exc.headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    body = operation_outcome(Issue("internal error; nothing was acknowledged", code="exception",
                                   severity="fatal"))  # fmt: skip
    return json_response(body, 500)


def _lifespan(gateway: Gateway, store: StoreHandle) -> Any:
    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with gateway.lifespan(app):
            # What start-up made (modules, FHIR definitions, the app) lives as long as the
            # process: out of the collector's sight, a full collection scans only what
            # requests made since, instead of pausing every request for the whole heap.
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                store.close()

    return lifespan


def create_app(
    settings: Settings | None = None,
    *,
    producer: EventProducer | None = None,
    extra_routes: Sequence[BaseRoute] = (),
    extra_paths: Mapping[str, Any] | None = None,
) -> Starlette:
    """A gateway app. Pass `producer` to share one (the app then leaves it open)."""
    settings = settings or get_settings()
    metrics = GatewayMetrics()
    guard = Guard(verifier_from_settings(settings), RateLimiter.share_of(settings))
    gateway = Gateway(settings, guard, metrics, producer)
    store = StoreHandle(settings)
    # The router tries routes in order: the busiest ingest route first (its path is no
    # other route's), then the probes, the FHIR reads and the other ingest routes.
    routes: list[BaseRoute] = [*routes_hl7v2.routes, *routes_probes.routes, *extra_routes]
    for module in (*FHIR_READ_ROUTE_MODULES, *INGEST_ROUTE_MODULES):
        if module is not routes_hl7v2:
            routes.extend(module.routes)
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(AccessMiddleware, metrics=metrics, log_requests=settings.gateway.access_log)
        ],
        exception_handlers={
            GatewayError: gateway_error_handler,
            HTTPException: _http_error,
            Exception: _server_error,
        },
        lifespan=_lifespan(gateway, store),
    )
    app.state.gateway = gateway
    app.state.fhir_store = store
    paths = {**routes_dicom.openapi_paths(), **(extra_paths or {})}
    document = openapi_document(paths)
    document["paths"] = merge_reads(document["paths"])
    app.state.openapi = orjson.dumps(document)
    return app
