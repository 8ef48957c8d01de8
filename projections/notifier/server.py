"""The notifier's two listeners.

- The websocket port (public, path /ws): a client sends `bind-with-token <token>`, gets a
  handshake bundle, then its subscription's notifications (backport IG websocket channel).
  The notifier serves it, not the gateway: it holds each subscription's position and is
  where its events are numbered, so a bound client is sent them straight from there, in
  order, with no second hop or per-connection consumer of the log.
- The control port (the gateway's only, never exposed): `GET /status/{id}` answers the
  $status Bundle, `POST /token/{id}` mints a binding token. The gateway checks the caller's
  scopes and asks here, with the credential of projections/notifier/control_auth.py.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from projections.notifier.bundles import status_bundle
from projections.notifier.control_auth import control_credential
from projections.notifier.delivery import Delivery, handshake, served
from projections.notifier.state import State
from projections.notifier.subscriptions import Channel
from streams.settings import Settings

log = logging.getLogger(__name__)
_PATH = re.compile(r"/(status|token)/([A-Za-z0-9\-.]{1,64})")


@dataclass(frozen=True)
class Binding:
    sub_id: str
    expires: float  # time.time()


class Tokens:
    """Binding tokens: minted for the gateway, used once by a websocket client."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, Binding] = {}

    def mint(self, sub_id: str) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._tokens = {t: b for t, b in self._tokens.items() if b.expires > now}
            self._tokens[token] = Binding(sub_id, now + self.ttl)
        return token, now + self.ttl

    def use(self, token: str) -> str | None:
        with self._lock:
            binding = self._tokens.pop(token, None)
        if binding is None or binding.expires < time.time():
            return None
        return binding.sub_id


async def websocket_handler(conn: ServerConnection, delivery: Delivery, tokens: Tokens) -> None:
    if conn.request is None or conn.request.path.split("?")[0] != "/ws":
        await conn.close(1008, "the websocket path is /ws")
        return
    bound: list[str] = []
    try:
        async for message in conn:
            text = message if isinstance(message, str) else message.decode(errors="replace")
            verb, _, token = text.strip().partition(" ")
            if verb != "bind-with-token":
                await conn.send(orjson.dumps({"error": f"unknown request {verb[:40]!r}"}).decode())
                continue
            sub_id = tokens.use(token.strip())
            if sub_id is None:
                await conn.send(orjson.dumps({"error": "token unknown or expired"}).decode())
                continue
            hello = handshake(delivery.state, delivery.base, sub_id)
            if hello is not None:
                await conn.send(hello.decode())
            delivery.bind(sub_id, conn)
            bound.append(sub_id)
    except ConnectionClosed:
        pass
    finally:
        for sub_id in bound:
            delivery.unbind(sub_id, conn)


async def serve_delivery(
    delivery: Delivery, tokens: Tokens, settings: Settings, stop: asyncio.Event
) -> None:
    """The delivery tasks and the websocket listener, until `stop`."""

    async def handler(conn: ServerConnection) -> None:
        await websocket_handler(conn, delivery, tokens)

    async with serve(handler, settings.notifier.host, settings.notifier.port):
        supervisor = asyncio.create_task(delivery.supervise())
        await stop.wait()
        supervisor.cancel()
        await delivery.close()


def control_server(state: State, tokens: Tokens, settings: Settings) -> ThreadingHTTPServer:
    """The control listener (serve_forever it in a thread)."""
    base = settings.notifier.fhir_base.rstrip("/")
    credential = control_credential(settings).encode()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _route(self, method: str) -> None:
            given = (self.headers.get("Authorization") or "").encode()
            if not hmac.compare_digest(given, credential):
                self._answer(401, {"error": "the control port answers the gateway only: send "
                                            "its Authorization credential"})  # fmt: skip
                return
            found = _PATH.fullmatch(self.path)
            if found is None:
                self._answer(404, {"error": "no such path"})
                return
            what, sub_id = found.groups()
            row = state.subscription(sub_id)
            if row is None:
                self._answer(404, {"error": f"Subscription/{sub_id} is not known to the notifier"})
            elif what == "status" and method == "GET":
                self._answer(200, status_bundle(row, base))
            elif what == "token" and method == "POST":
                sub = served(row)
                if sub is None or sub.channel is not Channel.websocket:
                    self._answer(400, {"error": f"Subscription/{sub_id} is not an active "
                                                "websocket subscription"})  # fmt: skip
                    return
                token, expires = tokens.mint(sub_id)
                self._answer(200, {"token": token, "expires": expires,
                                   "subscription": sub_id, "websocket-url": settings.notifier.ws_url})  # fmt: skip
            else:
                self._answer(405, {"error": f"{method} not allowed here"})

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    return ThreadingHTTPServer(
        (settings.notifier.control_host, settings.notifier.control_port), Handler
    )
