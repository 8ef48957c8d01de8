"""Handing outcomes from the Kafka delivery thread to an event loop, in batches.

`loop.call_soon_threadsafe` per outcome wakes the loop once per event (a write to its
self-pipe each time). Under load the broker confirms events in bursts, so this bridge queues
each outcome and wakes the loop once per burst: the loop then runs every queued callback in
the order the outcomes came.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class LoopBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._scheduled = False

    def relay(self, callback: Callable[[T], None]) -> Callable[[T], None]:
        """A function which, called from any thread with a value, runs `callback(value)` on
        the loop (e.g. `producer.produce(out, bridge.relay(settle))`)."""
        return lambda value: self._arrived(callback, value)

    def _arrived(self, callback: Callable[[Any], None], value: Any) -> None:
        self._done.append((callback, value))  # deque.append is atomic
        if not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to answer
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False  # before draining: an outcome arriving now schedules anew
        done = self._done
        while done:
            callback, value = done.popleft()
            callback(value)
