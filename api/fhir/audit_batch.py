"""The AuditEvents of one turn of the gateway's event loop, made and queued together at its end.

Each audited read used to seal and queue its record between reading the store and
answering. Under load that interleaving was the expensive part, not the work itself: the
record of a read cost 22 µs in a loop of records and 80-97 µs of the thread's CPU in the
server, where each read's routing, store lookup and response run between two records
(bench_fhir_rest, 200,000 patients). Made one after the other, in a callback the loop runs
after the reads of its turn (6-16 of them at 32 clients), a record costs about 65 µs and
a read 0.73x the gateway's CPU (docs/figures.md, 2026-12-03, late night).

What holds is unchanged: a read waits for its record to be queued in the producer before
it is answered, and a record that cannot be made fails its read (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from api.fhir.audit_event import audit_event
from api.fhir.audit_record import audit_record, recorded_now
from api.metrics import GatewayMetrics
from api.security.auth import Principal
from schemas.events import new_event_id
from streams.errors import DeliveryFailed
from streams.producer import Delivered, EventProducer, Outgoing
from streams.topics import AUDIT

log = logging.getLogger("carelog.gateway.audit")


@dataclass(slots=True)
class _Access:
    principal: Principal
    interaction: str
    address: str
    refs: list[str]
    query: str | None
    recorded_at: datetime
    at_us: int
    correlation_id: str
    queued: asyncio.Future[None]


class AuditBatch:
    """Queues each access's AuditEvent in the audit producer at the end of the loop's turn."""

    def __init__(self, producer: Callable[[], EventProducer], metrics: GatewayMetrics) -> None:
        self._producer = producer
        self._metrics = metrics
        self._pending: list[_Access] = []

    def queue(self, principal: Principal, interaction: str, address: str, refs: list[str],
              query: str | None, correlation_id: str) -> asyncio.Future[None]:  # fmt: skip
        """A future done once the AuditEvent of this access (`audit_event`'s arguments) is
        queued, or failing with why it could not be made."""
        loop = asyncio.get_running_loop()
        queued: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush)
        recorded_at, at_us = recorded_now()
        self._pending.append(_Access(principal, interaction, address, refs, query, recorded_at,
                                     at_us, correlation_id, queued))  # fmt: skip
        return queued

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            producer = self._producer()
        except Exception as exc:  # no producer to queue in: each read is answered all the same
            for access in batch:
                self._failed(str(exc))
                _settle(access.queued)
            return
        for access in batch:
            try:
                event = audit_event(access.principal, access.interaction, access.address,
                                    access.refs, access.query, access.recorded_at)  # fmt: skip
                access_id = new_event_id()
                value = audit_record(event, access_id, access.recorded_at, access.at_us)
            except Exception as exc:  # no record, no answer: the read fails with why
                _settle(access.queued, exc)
                continue
            record = Outgoing(AUDIT, f"AuditEvent/{access_id}", value,
                              headers=[("correlation-id", access.correlation_id)])  # fmt: skip
            try:  # no Future per read: only a failure has anything to do
                producer.produce(record, self._confirmed)
            except Exception as exc:  # could not even queue it: the read is answered all the same
                self._failed(str(exc))
            _settle(access.queued)

    def _confirmed(self, outcome: Delivered | DeliveryFailed) -> None:  # on the delivery thread
        if isinstance(outcome, DeliveryFailed):
            self._failed(str(outcome))

    def _failed(self, why: str) -> None:
        log.error("an AuditEvent was not appended to the log: %s", why)
        self._metrics.audit_failed.inc()


def _settle(queued: asyncio.Future[None], error: Exception | None = None) -> None:
    if queued.done():  # cancelled: the request went away (client disconnected)
        return
    if error is None:
        queued.set_result(None)
    else:
        queued.set_exception(error)
