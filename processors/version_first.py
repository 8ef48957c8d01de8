"""The worker versions what it translated before it translates more.

Both agents take their events from one fetch loop, and Faust's streams take turns an event
each (each event yields to the loop once). Under a backlog both queues stay full, so the
version stage handles one translated record per inbound message translated, while a message
gives about 3.4 of them in the bench's mix (an ORU^R01 of 10 OBX gives 13). The translated
topic grows, and much of the work done is not readable yet: at 500 msg/s offered, sealed,
the worker had translated 86,000 records and versioned 39,000 when the load stopped.

So while more translated records wait for this worker's version stage than it handles in
about a second, the worker holds its inbound partitions (out of the fetch, with what was
fetched of them before still handed out: HeldPartitions), and takes them up again when the
wait is short. An inbound message waits on the log meanwhile, where it is safe, instead of
as a translated record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import faust
from faust.transport.consumer import Consumer
from faust.types import TP

from processors.fetch_state import queued, unread
from processors.patched_shapes import require_source

# HeldPartitions.on_buffer_drop overrides this, around its bookkeeping of two sets.
require_source(Consumer, "on_buffer_drop", "4b57e8a418d5ad9c", __name__)
# getmany checks each fetched record's partition against the set _wait_next_records returns
# (`tp in active_partitions or tp in self._buffered_partitions`), which HeldPartitions widens.
require_source(Consumer, "getmany", "4b168d84882a70d6", __name__)
# HeldPartitions._wait_next_records stands for its one-second sleep when no partition is active.
require_source(Consumer, "_wait_next_records", "6218e1969a636b3f", __name__)

CHECK_SECONDS = 0.05
STALL_SECONDS = 2.0
IDLE_SECONDS = 1.0  # Faust's sleep when no partition is active, now its longest

log = logging.getLogger(__name__)


def waiting(app: faust.App, agent: Any, topic: str) -> int:
    """Translated records waiting for the version stage: queued for `agent`, committed on
    this worker's partitions of `topic` but not fetched yet (as last fetched), and sent by
    this worker in transactions still open (some go to other workers' partitions)."""
    consumer: Any = app.consumer
    unfetched = sum(unread(consumer, tp) or 0 for tp in consumer.assignment() if tp.topic == topic)
    uncommitted: int = consumer.transactions.uncommitted(topic)
    return queued(agent) + unfetched + uncommitted


def version_first(app: faust.App, agent: Any, topic: str, pause_above: int) -> None:
    """Register the task on `app` (before it starts): pause the inbound partitions while
    `agent`, reading `topic`, has more than `pause_above` records waiting, and resume them
    below a quarter of it (`CARELOG_WORKER_VERSION_FIRST_RECORDS`; 2,000 is about a second
    of the version stage's work). A pause the version stage does nothing in for
    STALL_SECONDS ends too: the count is then wrong, and the worker must not stand still."""
    if pause_above <= 0:
        return  # off
    resume_below = pause_above // 4

    def versioned() -> int:
        return sum(actor.stream.events_total for actor in list(agent._actors))

    async def steer() -> None:
        progress, since = versioned(), time.monotonic()
        while not app.should_stop:
            await asyncio.sleep(CHECK_SECONDS)
            if getattr(app, "rebalancing", False):
                continue  # Faust pauses everything, seeks, and resumes it itself meanwhile
            consumer: Any = app.consumer
            paused: set[TP] = consumer.held
            try:
                behind = waiting(app, agent, topic)
                inbound = {tp for tp in consumer.assignment() if tp.topic != topic}
            except Exception:  # a rebalance or a stopping consumer: look again next time
                continue
            now, done = time.monotonic(), versioned()
            if done != progress:
                progress, since = done, now
            stalled = bool(paused) and now - since > STALL_SECONDS
            if stalled:
                log.warning("inbound resumed: %d translated records counted as waiting, "
                            "none versioned for %.0f s", behind, STALL_SECONDS)  # fmt: skip
            if behind > pause_above and not stalled:
                # Faust's own set: after a rebalance it has resumed what it paused.
                new = inbound - consumer._paused_partitions
                if new:
                    consumer.hold(new)
                    since = now
            elif paused and (behind < resume_below or stalled):
                consumer.release()

    app.task(steer)


def _end_fetch_wait(consumer: Any) -> None:
    """Faust's fetch (aiokafka's, on the consumer's thread) may be waiting, up to a second,
    for records of the partitions active when it began, while the records of a partition
    back in the fetch (resumed, or its buffer drained) are already fetched. End the wait:
    aiokafka then looks again, in Faust's set of active partitions, which it was given itself
    and which has just been updated."""
    thread = consumer._thread
    fetcher = thread._ensure_consumer()._fetcher

    def wake() -> None:
        for waiter in list(fetcher._fetch_waiters):
            if not waiter.done():
                waiter.set_result(None)

    thread.thread_loop.call_soon_threadsafe(wake)


class HeldPartitions(Consumer):
    """version_first's pause of inbound partitions: out of the fetch, and nothing lost.

    Faust's pause alone drops records: getmany hands a fetched record to the streams only if
    its partition is in the live set of active partitions when its turn comes, and a fetched
    batch is handed out over many turns of the event loop (a full stream buffer waits). A
    record of a partition paused meanwhile was skipped, but aiokafka's position had moved
    past it, so nothing fetched it again until a rebalance: ci45 saw 8 inbound messages never
    translated. A held partition's records fetched before the hold are handed out.

    And Faust puts a partition back in the fetch when its stream's buffer drains, even one
    paused meanwhile; a paused partition now waits for its resume.

    And a partition back in the fetch (its buffer drained, the hold ended) waited for a wait
    that began without it: with no partition active (inbound held, the version stage's
    buffer full) Faust's fetch loop slept a whole second, and aiokafka's fetch waited up to a
    second for records of the partitions active when it began. With a buffer of 16 the
    version stage got about 16 records a translated partition a second: Faust's sleep alone
    took about 103 of the 115 s tests/processors/test_worker_version_first.py's fetch loop
    ran. Both waits now end as soon as a partition is back (_back_in_fetch)."""

    held: set[TP]  # the partitions version_first holds (paused)
    _back: asyncio.Event  # set when a partition goes back into the fetch

    def _reset_state(self) -> None:
        """Faust's partition bookkeeping starts afresh (at start, on a restart): so do the holds."""
        super()._reset_state()
        self.held = set()
        self._back = asyncio.Event()

    def hold(self, tps: set[TP]) -> None:
        self.pause_partitions(tps)
        self.held.update(tps)

    def release(self) -> None:
        """Resume the held partitions still assigned (Faust forgets revoked ones itself)."""
        self.resume_partitions(self.held & self.assignment())
        self.held.clear()
        self._back_in_fetch()

    def _back_in_fetch(self) -> None:
        """Partitions went back into Faust's active set: end the waits that began without them,
        Faust's for an active partition (_wait_next_records) and aiokafka's for records."""
        self._back.set()
        _end_fetch_wait(self)

    async def _wait_next_records(self, timeout: float) -> Any:
        if self.flow_active and not self.app.client_only and not self._get_active_partitions():
            # Where Faust sleeps IDLE_SECONDS. Nothing runs between the check and the wait,
            # so no _back_in_fetch is missed.
            self._back.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_SECONDS):
                    await self._back.wait()
            if not self._get_active_partitions():
                return {}, _ActiveOrHeld(set(), self.held)  # what Faust returns after its sleep
        records, active = await super()._wait_next_records(timeout)
        if active is None:
            return records, active
        return records, _ActiveOrHeld(active, self.held)

    def on_buffer_drop(self, tp: TP) -> None:
        if tp in self._paused_partitions:
            self._buffered_partitions.discard(tp)
        elif tp in self._buffered_partitions:
            super().on_buffer_drop(tp)
            self._back_in_fetch()


class _ActiveOrHeld:
    """The partitions whose fetched records getmany hands out: active (Faust's live set) or
    held. A held partition's records in a batch were fetched while it was active."""

    __slots__ = ("active", "held")

    def __init__(self, active: set[TP], held: set[TP]) -> None:
        self.active, self.held = active, held

    def __contains__(self, tp: object) -> bool:
        return tp in self.active or tp in self.held
