"""The outermost middleware: request ids, the access log line and the request metrics.

X-Request-ID is taken from the request when it looks like an id, else generated; it is
echoed on the response and carried into events as their correlation id. Routes are logged
and counted by template (/fhir/{type}/{id}), never by path, so no identifier leaks into logs
or into metric labels.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import GatewayMetrics
from api.security.guard import CLIENT_KEY

REQUEST_ID_KEY = "carelog.request_id"
EVENT_ID_KEY = "carelog.event_id"
_VALID_ID = re.compile(rb"[A-Za-z0-9._:@+=/-]{1,128}")

log = logging.getLogger("carelog.gateway.access")


# Generated ids: a random per-process prefix and a counter. Unique without a syscall per
# request (uuid4 reads the OS random source each time; this is the hot path).
_PREFIX = os.urandom(8).hex()
_COUNTER = itertools.count(1)


def _new_request_id() -> bytes:
    return f"{_PREFIX}{next(_COUNTER):016x}".encode()


def request_id(scope: Scope) -> str:
    return str(scope.get(REQUEST_ID_KEY) or "")


class AccessMiddleware:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = b""
        for name, value in scope["headers"]:
            if name == b"x-request-id" and _VALID_ID.fullmatch(value):
                rid = value
                break
        rid = rid or _new_request_id()
        scope[REQUEST_ID_KEY] = rid.decode()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "(unmatched)"
        method = scope["method"]
        self.metrics.observe(route, method, status, elapsed)
        if self.log_requests:
            fields = {
                "method": method, "route": route, "status": status,
                "duration_ms": round(elapsed * 1000, 3),
                "client": scope.get(CLIENT_KEY) or _peer(scope),
                "request_id": scope[REQUEST_ID_KEY],
            }  # fmt: skip
            if EVENT_ID_KEY in scope:
                fields["event_id"] = scope[EVENT_ID_KEY]
            log.info("request", extra=fields)


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "unknown"
