"""Handing completions from the Kafka delivery thread to an event loop, in batches.

`asyncio.wrap_future` wakes the loop once per future. Under load the broker confirms events
in bursts, so this bridge queues each completion and wakes the loop once per burst: the loop
then runs every queued callback in the order the confirmations came.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class LoopBridge:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done: deque[tuple[Callable[[Future[Any]], None], Future[Any]]] = deque()
        self._scheduled = False

    def when_done(self, future: Future[Any], callback: Callable[[Future[Any]], None]) -> None:
        """Run `callback(future)` on the loop once `future` is done (from any thread)."""
        future.add_done_callback(lambda f: self._completed(callback, f))

    def _completed(self, callback: Callable[[Future[Any]], None], future: Future[Any]) -> None:
        self._done.append((callback, future))  # deque.append is atomic
        if not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody left to answer
                self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False  # before draining: a completion arriving now schedules anew
        done = self._done
        while done:
            callback, future = done.popleft()
            callback(future)
