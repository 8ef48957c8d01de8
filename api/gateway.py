"""What every route shares: settings, the guard, the metrics and the confirmed appends.

`append` (`append_all` for many events) and `refuse` are the only ways a route writes to the
log; each returns only once the broker has confirmed (acks=all), and translates a failed
delivery into 503 so that nothing is ever acknowledged that is not stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager
from functools import cached_property, partial
from typing import Any, TypeVar

from starlette.requests import Request

from api.access import REQUEST_ID_KEY
from api.errors import GatewayError, Unavailable
from api.fhir.audit_batch import AuditBatch
from api.ingest import Ingestor
from api.loop_bridge import LoopBridge
from api.metrics import GatewayMetrics
from api.readiness import Readiness
from api.security.guard import Guard
from projections.notifier.control_auth import control_credential
from schemas.events import InboundMessage
from streams.errors import DeliveryFailed
from streams.privacy.envelope import open_in_background
from streams.producer import Delivered, EventProducer
from streams.settings import Settings

T = TypeVar("T")


class Gateway:
    def __init__(
        self,
        settings: Settings,
        guard: Guard,
        metrics: GatewayMetrics,
        producer: EventProducer | None = None,
    ) -> None:
        self.settings = settings
        self.guard = guard
        self.metrics = metrics
        self.readiness = Readiness(settings)
        self._producer = producer
        self._owns_producer = producer is None
        self._ingestor: Ingestor | None = None
        self._audit_producer: EventProducer | None = None
        self._loop_bridge: LoopBridge | None = None
        self._loop_bridge_loop: asyncio.AbstractEventLoop | None = None

    @cached_property
    def notifier_credential(self) -> str:
        """What the notifier's control port asks of its caller (derived once: it reads the
        master key)."""
        return control_credential(self.settings)

    @property
    def retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, self.settings.gateway.delivery_timeout_ms // 1000))}

    @property
    def ingestor(self) -> Ingestor:
        if self._ingestor is None:
            if self._producer is None:
                # A short delivery timeout: a sender learns in seconds that Kafka is down.
                self._producer = EventProducer(
                    self.settings,
                    **{"message.timeout.ms": self.settings.gateway.delivery_timeout_ms},
                )
            self._ingestor = Ingestor(self._producer)
        return self._ingestor

    @property
    def audit_producer(self) -> EventProducer:
        """The producer of AuditEvents (api/fhir/audit.py): its own, lingering longer than
        the ingest producer, whose appends senders wait for; the shared one when a
        producer was given (tests)."""
        if not self._owns_producer:
            return self.ingestor.producer
        if self._audit_producer is None:
            self._audit_producer = EventProducer(
                self.settings,
                **{"message.timeout.ms": self.settings.gateway.delivery_timeout_ms,
                   "linger.ms": self.settings.fhir.audit_linger_ms},
            )  # fmt: skip
        return self._audit_producer

    @cached_property
    def audit_batch(self) -> AuditBatch:
        """Where reads queue their AuditEvents (made at the end of the loop's turn)."""
        return AuditBatch(lambda: self.audit_producer, self.metrics)

    @asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        self.ingestor  # noqa: B018 - connect at start, not on the first request
        open_in_background()  # the key store too
        if self.settings.fhir.audit_reads:
            self.audit_producer  # noqa: B018
        try:
            yield
        finally:
            timeout = self.settings.gateway.delivery_timeout_ms / 1000
            if self._owns_producer and self._producer is not None:
                self._producer.close(timeout=timeout)
                self._producer = self._ingestor = None
            if self._audit_producer is not None:  # what the reads queued is appended first
                self._audit_producer.close(timeout=timeout)
                self._audit_producer = None

    def relay(self, callback: Callable[[T], None]) -> Callable[[T], None]:
        """`callback` run on the running loop when called from the delivery thread: what
        Ingestor.produce wants as `then` (LoopBridge: one wake-up per burst)."""
        loop = asyncio.get_running_loop()
        if self._loop_bridge is None or self._loop_bridge_loop is not loop:
            self._loop_bridge, self._loop_bridge_loop = LoopBridge(loop), loop
        return self._loop_bridge.relay(callback)

    async def append(self, event: InboundMessage, key: str, owner: str | None = None) -> Delivered:
        """Append `event` (see Ingestor.produce for `owner`); 503 if the broker did not confirm."""
        # Confirmations reach the loop in batches (one wake-up per burst, not per event).
        waiter: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        try:
            self.ingestor.produce(event, key, self.relay(partial(_settle, waiter)), owner)
            delivered = await waiter
        except DeliveryFailed as exc:
            raise self.not_confirmed(exc) from None
        self.metrics.appended.labels(event.format.value).inc()
        return delivered

    async def append_all(
        self, events: Sequence[tuple[InboundMessage, str, str | None]]
    ) -> list[Delivered]:
        """Append many (event, key, owner: see Ingestor.produce); return once the broker
        confirmed every one, else 503.

        Encodes and queues them in a worker thread and wakes the loop once, when the last is
        confirmed (not once per event): a request of thousands of events never holds the
        loop that serves every other request.
        """
        if not events:
            return []
        loop = asyncio.get_running_loop()
        all_confirmed: asyncio.Future[None] = loop.create_future()
        countdown = _Countdown(len(events), lambda: _resolve_soon(loop, all_confirmed))

        def submit_all() -> list[Future[Delivered]]:
            futures = []
            for event, key, owner in events:
                futures.append(self.ingestor.submit(event, key, owner))
                futures[-1].add_done_callback(countdown.tick)
            return futures

        try:
            futures = await asyncio.to_thread(submit_all)
        except DeliveryFailed as exc:
            raise self.not_confirmed(exc) from None
        await all_confirmed
        failed = next((f.exception() for f in futures if f.exception() is not None), None)
        if failed is not None:
            raise self.not_confirmed(failed)
        for event, _, _ in events:
            self.metrics.appended.labels(event.format.value).inc()
        return [f.result() for f in futures]

    def not_confirmed(self, exc: BaseException) -> Unavailable:
        """The 503 answering an event the broker did not confirm."""
        return Unavailable(
            f"not stored: the log did not confirm the message ({exc}); retry later",
            headers=self.retry_after,
        )

    async def refuse(
        self,
        exc: GatewayError,
        original: bytes,
        request: Request,
        *,
        format: str,
        sender: str,
        key: str | None = None,
    ) -> GatewayError:
        """Keep refused input on carelog.rejected; returns the error to answer with.

        If even the refusal cannot be stored, the answer is 503: the sender keeps the input
        and retries, so it is never lost between us and them.
        """
        if not exc.stored_as_rejected:
            return exc
        try:
            await self.ingestor.reject(
                original, exc.issues, format=format,
                content_type=request.headers.get("content-type"), sender=sender,
                correlation_id=request_id(request), key=key or sender,
                headers={"http.method": request.method, "http.path": request.url.path,
                         "http.status": str(exc.status)},
            )  # fmt: skip
        except DeliveryFailed as failed:
            return Unavailable(
                f"refused ({exc}) and the refusal could not be recorded ({failed}); retry later",
                headers=self.retry_after,
            )
        self.metrics.rejected_stored.labels(format).inc()
        return exc


class _Countdown:
    """Calls `then` once, from whichever thread completes the last of `count` futures."""

    def __init__(self, count: int, then: Callable[[], None]) -> None:
        self._left = count
        self._then = then
        self._lock = threading.Lock()

    def tick(self, _: Future[Any]) -> None:
        with self._lock:
            self._left -= 1
            last = self._left == 0
        if last:
            self._then()


def _resolve_soon(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> None:
    def resolve() -> None:
        if not future.done():  # the request went away (client disconnected): nobody to tell
            future.set_result(None)

    with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to answer
        loop.call_soon_threadsafe(resolve)


def _settle(waiter: asyncio.Future[Delivered], outcome: Delivered | DeliveryFailed) -> None:
    if waiter.done():  # the request went away (client disconnected): nobody to tell
        return
    if isinstance(outcome, DeliveryFailed):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def request_id(request: Request) -> str:
    return str(request.scope.get(REQUEST_ID_KEY) or "")
