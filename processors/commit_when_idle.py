"""Commit the worker's transactions as soon as it has handled everything it was given.

Faust commits on a timer (`CARELOG_WORKER_COMMIT_INTERVAL_SECONDS`), and in exactly-once mode
an output is unreadable (read_committed) until its transaction commits. Both stages commit
in the same timer tick, so a resource translated and made readable at one tick is versioned
within milliseconds and then waits out a whole interval for the next: at 50 msg/s the
version stage's outputs waited about 555 ms (p50) and the translate stage's 386 ms.

Here a task commits as soon as the worker has read every partition to its end, no event is
queued for or held by an agent, and something was handled since the last commit, at most
every `min_interval` seconds. Under a backlog the worker is not read to the end, so the timer
commits as before; the timer stays the longest wait.

Each commit costs the worker and the broker about the same whatever it holds (a transaction
round, its markers, the offsets), and a worker that keeps up at high load is read to its end
many times a second. So once it handles more than BUSY_RECORDS_PER_SECOND records a second
(since its last commit), it commits when idle at most every BUSY_SECONDS instead. At 500
msg/s offered on 2 cores, commits at most every 0.2 s instead of 0.05 s took 0.91x the CPU of
every process and the broker together (docs/figures.md, 2026-12-05, morning); at 50 msg/s
the worker handles a tenth of that rate and commits as soon as before.
A commit is Faust's own (the same offsets, outputs and table changelog in one transaction);
only its moment changes, so exactly-once holds as it did.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from processors.fetch_state import queued, unread

CHECK_SECONDS = 0.01  # how often idleness is looked at: a short sleep on the event loop
BUSY_SECONDS = 0.2  # the shortest time between idle commits under load
# About 135 msg/s of the bench's mix a worker, 270 offered to two (an inbound message and its
# 3.4 translated records are 4.4 records); at 50 msg/s offered each handles about 110 a second.
BUSY_RECORDS_PER_SECOND = 600


def _busy(app: faust.App) -> bool:
    """An agent holds an event it has not acknowledged, events wait in its queue, or the
    consumer has not handed out everything up to the end of a partition."""
    consumer: Any = app.consumer
    if consumer._unacked_messages:
        return True
    if any(queued(agent) for agent in app.agents.values()):
        return True
    return _behind(consumer, set(app.tables.changelog_topics))


def _behind(consumer: Any, changelogs: set[str]) -> bool:
    """Some partition has records the consumer has not handed to Faust yet, as last fetched.
    Under a backlog the queues empty between fetches; committing then would put a
    transaction round on the broker every `min_interval` while the timer's suffices."""
    try:
        paused = consumer._paused_partitions  # left unread on purpose (version_first.py)
        for tp in consumer.assignment():
            if tp.topic in changelogs or tp in paused:  # changelogs: recovery, not read here
                continue
            left = unread(consumer, tp)
            if left is None or left > 0:
                return True  # not fetched yet: unknown, so leave it to the timer
    except Exception:  # a rebalance or a stopping consumer: leave it to the timer
        return True
    return False


def _handled_since_commit(app: faust.App) -> int:
    """Records handled since the last commit: Faust drops offsets from its acked lists as it
    commits them."""
    consumer: Any = app.consumer
    return sum(len(offsets) for offsets in consumer._acked.values())


def shortest_gap(handled: int, since_commit: float, min_interval: float) -> float:
    """How long after the last commit an idle commit may come: `min_interval`, or
    BUSY_SECONDS once the records handled since came faster than BUSY_RECORDS_PER_SECOND."""
    if handled > BUSY_RECORDS_PER_SECOND * max(since_commit, min_interval):
        return max(min_interval, BUSY_SECONDS)
    return min_interval


def commit_when_idle(app: faust.App, min_interval: float) -> None:
    """Register the task on `app` (before it starts); `min_interval` <= 0 leaves Faust's
    timer alone."""
    if min_interval <= 0:
        return

    async def commit_idle() -> None:
        last = time.monotonic()
        while not app.should_stop:
            await asyncio.sleep(CHECK_SECONDS)
            now = time.monotonic()
            if now - last < min_interval or getattr(app, "rebalancing", False):
                continue
            handled = _handled_since_commit(app)
            if not handled or now - last < shortest_gap(handled, now - last, min_interval):
                continue
            if _busy(app):
                continue
            last = now
            await app.consumer.commit()

    app.task(commit_idle)
