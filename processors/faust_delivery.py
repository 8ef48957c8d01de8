"""Hand a fetched message to its stream without four asyncio tasks when nothing waits.

faust-streaming's fetch loop (Consumer._drain_messages) delivers every message with
`wait_first(callback(message), suspend_flow.wait())`: it makes a task of the delivery, one
of the flow's suspension and two more (stopped, crashed), waits for the first, and cancels
the others, so that a delivery blocked on a full stream buffer is abandoned when a rebalance
suspends the flow. That machinery cost about a tenth of the worker's CPU, for a delivery
that almost always completes without waiting: the buffer has room.

Here the delivery runs first as a plain coroutine step. When it completes in that step,
nothing could have suspended the flow meanwhile and no task is needed. When it has to wait
(a full buffer, a lock held), it goes on exactly as before: under wait_first, raced against
the flow's suspension, from where it stopped.
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.consumer import Consumer
from mode.services import WaitResults

from processors.patched_shapes import require_source

# The fast path below stands for the wait_first call in this loop.
require_source(Consumer, "_drain_messages", "44a2500309e83c63", __name__)


@types.coroutine
def _resumed(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Generator[Any, Any, Any]:
    """`coro`, which already ran up to yielding `waiting_on`, driven on from there (what
    `yield from` does, for a coroutine already started)."""
    while True:
        try:
            sent = yield waiting_on
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation: thrown into the delivery
            try:
                waiting_on = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        else:
            try:
                waiting_on = coro.send(sent)
            except StopIteration as stop:
                return stop.value


async def resumed(coro: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """`coro`, which already ran up to yielding `waiting_on`, as a coroutine again."""
    return await _resumed(coro, waiting_on)


class DirectDeliveryConsumer(Consumer):
    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        if len(coros) == 2 and timeout is None and _is_flow_wait(coros[1], self):
            delivery, flow_wait = coros
            if not self.suspend_flow.is_set():
                try:
                    waiting_on = delivery.send(None)
                except StopIteration as done:
                    flow_wait.close()
                    return WaitResults([delivery], [done.value], False)
                delivery = resumed(delivery, waiting_on)
            return await super().wait_first(delivery, flow_wait)
        return await super().wait_first(*coros, timeout=timeout)


def _is_flow_wait(coro: Any, consumer: Consumer) -> bool:
    """Whether `coro` is the consumer's `suspend_flow.wait()` (the fetch loop's race)."""
    frame = getattr(coro, "cr_frame", None)
    return frame is not None and frame.f_locals.get("self") is consumer.suspend_flow
