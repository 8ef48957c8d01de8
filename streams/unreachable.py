"""Computing a batch again while the broker is away, rather than giving up on it.

Opening events may need carelog.keys (a key made just before an outage is fetched on first
use), and a key lookup that meets a stopped broker raises once its wait runs out. The
projections hold the batch they read and have written none of it: they wait, with backoff,
and open it again once the broker is back. Exiting instead left the store behind until a
supervisor restarted the process (the worker's agents do the same, asynchronously:
processors/worker.py)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from confluent_kafka import KafkaException

from streams.errors import BrokerUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")


def until_reachable(what: str, compute: Callable[[], T], stop: threading.Event | None = None) -> T:
    """`compute()`, again while it raises because the broker is unreachable (0.5 s doubling
    to 5 s between tries); any other error, or one while `stop` is set, is raised."""
    delay = 0.5
    while True:
        try:
            return compute()
        except (KafkaException, BrokerUnavailable) as exc:
            if stop is not None and stop.is_set():
                raise
            log.warning("%s: the broker is unreachable (%s); again in %.1f s", what, exc, delay)
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
            delay = min(2 * delay, 5.0)
