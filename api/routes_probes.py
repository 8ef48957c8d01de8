"""Probes and documents: /healthz, /readyz, /metrics, /openapi.json (no token needed)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from api.gateway import gateway_of


async def healthz(request: Request) -> Response:
    """Liveness: the process is up and serving."""
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    """Readiness: Kafka answered a metadata request within the last second or so."""
    ready, why = await gateway_of(request).readiness.check()
    return PlainTextResponse(why + "\n", 200 if ready else 503)


async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    return await gateway_of(request).metrics.endpoint(request)


async def openapi(request: Request) -> Response:
    """The OpenAPI document (built once per app)."""
    return Response(request.app.state.openapi, media_type="application/json")


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
