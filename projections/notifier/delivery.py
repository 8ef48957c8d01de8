"""Delivering each subscription's events in order, at least once, from its position.

One asyncio task per served subscription takes the next events after its position
(`delivered`), sends them in one notification bundle and moves the position only once the
endpoint took them: a rest-hook answers 2xx, a websocket client's send completes. A failed
rest-hook POST marks the subscription `error` and is retried after 1, 2, 4, ... seconds (up
to a maximum), the same events first, so an endpoint down for an hour gets everything in
order when it is back. A websocket subscription with no client bound waits for one. With a
heartbeat period, a heartbeat goes out when nothing else did for that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx
import orjson
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from projections.notifier import metrics
from projections.notifier.bundles import notification
from projections.notifier.state import Event, State, SubscriptionRow
from projections.notifier.subscriptions import (
    NOT_SERVED,
    Channel,
    Content,
    InvalidSubscription,
    Subscription,
    parse_subscription,
)
from streams.settings import Settings

log = logging.getLogger(__name__)


def served(row: SubscriptionRow) -> Subscription | None:
    """The Subscription to deliver for, or None (off, or refused when it came)."""
    if row.status == "off" or (row.error or "").startswith(NOT_SERVED):
        return None
    try:
        return parse_subscription(orjson.loads(row.json))
    except InvalidSubscription:
        return None


class Delivery:
    """The delivery tasks and the websocket clients bound to subscriptions (one event loop)."""

    def __init__(self, state: State, settings: Settings) -> None:
        self.state = state
        self.settings = settings
        self.base = settings.notifier.fhir_base.rstrip("/")
        self.sockets: dict[str, set[ServerConnection]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._http = httpx.AsyncClient(timeout=settings.notifier.delivery_timeout_seconds)

    def wake(self) -> None:
        """New events or a new binding: every task looks again (call in the loop)."""
        self._wake.set()

    def backoff(self, failures: int) -> float:
        s = self.settings
        wait: float = s.notifier.backoff_min_seconds * 2.0 ** max(0, failures - 1)
        return min(s.notifier.backoff_max_seconds, wait)

    async def supervise(self) -> None:
        """Keep one task per served subscription; look again on every wake (or each second)."""
        while True:
            self._wake.clear()
            wanted = {row.id for row in self.state.subscriptions() if served(row) is not None}
            for sub_id in wanted - self._tasks.keys():
                self._tasks[sub_id] = asyncio.create_task(self._serve(sub_id))
            for sub_id in [s for s in self._tasks if s not in wanted or self._tasks[s].done()]:
                self._tasks.pop(sub_id).cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)

    async def _idle(self, seconds: float) -> None:
        """Wait for a wake or `seconds`, whichever first."""
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait_for(asyncio.shield(waiter), seconds)
        except TimeoutError:
            pass
        finally:
            waiter.cancel()

    async def _serve(self, sub_id: str) -> None:
        try:
            await self._deliver(sub_id)
        except asyncio.CancelledError:
            raise
        except Exception:  # said here; supervise() starts it again within a second
            log.exception("subscription %s: delivery stopped", sub_id)
            raise

    async def _deliver(self, sub_id: str) -> None:
        last_sent = time.monotonic()
        while True:
            row = self.state.subscription(sub_id)
            sub = served(row) if row is not None else None
            if row is None or sub is None:
                return
            waiting_for_client = sub.channel is Channel.websocket and not self.sockets.get(sub_id)
            events = (
                []
                if waiting_for_client
                else self.state.pending(sub_id, self.settings.notifier.max_events)
            )
            if events:
                error = await self._send(sub, row, events, "event-notification")
                if error is None:
                    self.state.delivered(sub_id, [e.seq for e in events])
                    metrics.delivered(sub.channel, events)
                    last_sent = time.monotonic()
                else:
                    failures = self.state.failed(sub_id, error)
                    metrics.DELIVERY_FAILURES.labels(sub.channel.value).inc()
                    log.warning("subscription %s: delivery failed (%d in a row): %s",
                                sub_id, failures, error)  # fmt: skip
                    await asyncio.sleep(self.backoff(failures))
                continue
            heartbeat = sub.heartbeat_seconds
            if heartbeat and not waiting_for_client and time.monotonic() - last_sent >= heartbeat:
                error = await self._send(sub, row, [], "heartbeat")
                if error is None:
                    self.state.delivered(sub_id, [])
                else:
                    self.state.failed(sub_id, error)
                last_sent = time.monotonic()
            wait = (
                1.0
                if not heartbeat
                else max(0.05, min(1.0, heartbeat - (time.monotonic() - last_sent)))
            )
            await self._idle(wait)

    async def _send(
        self, sub: Subscription, row: SubscriptionRow, events: list[Event], kind: str
    ) -> str | None:
        """Send one bundle; None when it was taken, else why not."""
        body = notification(row, self.base, events, sub.content, kind)
        if sub.channel is Channel.websocket:
            return await self._send_ws(sub.id, body)
        assert sub.endpoint is not None
        headers = {"Content-Type": sub.payload_type, **dict(sub.headers)}
        try:
            answer = await self._http.post(sub.endpoint, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{sub.endpoint}: {type(exc).__name__}: {exc}"
        if 200 <= answer.status_code < 300:
            return None
        return f"{sub.endpoint} answered {answer.status_code}"

    async def _send_ws(self, sub_id: str, body: bytes) -> str | None:
        sent = 0
        for conn in list(self.sockets.get(sub_id, ())):
            try:
                await conn.send(body.decode())
                sent += 1
            except ConnectionClosed:
                self.unbind(sub_id, conn)
        return None if sent else "no websocket client took the notification"

    def bind(self, sub_id: str, conn: ServerConnection) -> None:
        """A client took the handshake: the subscription is active, its backlog goes out."""
        self.sockets.setdefault(sub_id, set()).add(conn)
        self.state.delivered(sub_id, [])
        self.wake()

    def unbind(self, sub_id: str, conn: ServerConnection) -> None:
        self.sockets.get(sub_id, set()).discard(conn)

    async def close(self) -> None:
        for task in self._tasks.values():
            task.cancel()
        await self._http.aclose()


def handshake(state: State, base: str, sub_id: str) -> bytes | None:
    """The handshake bundle a websocket client gets once bound."""
    row = state.subscription(sub_id)
    return None if row is None else notification(row, base, [], Content.empty, "handshake")
