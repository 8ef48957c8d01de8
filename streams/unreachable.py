"""Computing the work in hand again while the broker is away, rather than giving up on it.

Opening events may need carelog.keys (a key made just before an outage is fetched on first
use), and a key lookup that meets a stopped broker raises once its wait runs out. The
projections hold the batch they read and the worker the event in hand, none of it written
yet: they wait, with backoff, and compute it again once the broker is back. Exiting instead
left the store behind until a supervisor restarted the process, and a crashed worker agent
dropped its event."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from confluent_kafka import KafkaException

from streams.errors import BrokerUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
UNREACHABLE = (KafkaException, BrokerUnavailable)


def _delays() -> Iterator[float]:
    """0.5 s doubling to 5 s between tries."""
    delay = 0.5
    while True:
        yield delay
        delay = min(2 * delay, 5.0)


def until_reachable(what: str, compute: Callable[[], T], stop: threading.Event | None = None) -> T:
    """`compute()`, again while it raises because the broker is unreachable; any other
    error, or one while `stop` is set, is raised."""
    for delay in _delays():
        try:
            return compute()
        except UNREACHABLE as exc:
            if stop is not None and stop.is_set():
                raise
            log.warning("%s: the broker is unreachable (%s); again in %.1f s", what, exc, delay)
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
    raise AssertionError("unreachable: the delays never end")


async def until_reachable_async(what: str, compute: Callable[[], Awaitable[T]]) -> T:
    """`until_reachable` for a coroutine on an event loop (the worker's agents)."""
    for delay in _delays():
        try:
            return await compute()
        except UNREACHABLE as exc:
            log.warning("%s: the broker is unreachable (%s); again in %.1f s", what, exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the delays never end")
