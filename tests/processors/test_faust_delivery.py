"""A delivery that has to wait goes on from where its first step stopped, and a rebalance's
suspension still abandons it (processors/faust_delivery.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from processors.faust_delivery import resumed


async def deliver(gate: asyncio.Future[int], log: list[str]) -> int:
    log.append("start")
    try:
        value = await gate  # a full stream buffer: the delivery waits
    except asyncio.CancelledError:
        log.append("cancelled")
        raise
    log.append("delivered")
    return value + 1


def test_a_waiting_delivery_resumes_where_it_stopped() -> None:
    async def scenario() -> list[str]:
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        log: list[str] = []
        coro = deliver(gate, log)
        waiting_on = coro.send(None)  # the first step, as the fetch loop takes it
        going_on = resumed(coro, waiting_on)
        assert isinstance(going_on, Awaitable)  # what mode's wait_first makes a task of
        task = asyncio.ensure_future(going_on)
        await asyncio.sleep(0)
        assert not task.done()
        gate.set_result(41)
        assert await task == 42
        return log

    assert asyncio.run(scenario()) == ["start", "delivered"]


def test_a_suspension_cancels_a_waiting_delivery() -> None:
    async def scenario() -> list[str]:
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        log: list[str] = []
        coro = deliver(gate, log)
        task = asyncio.ensure_future(resumed(coro, coro.send(None)))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return log

    assert asyncio.run(scenario()) == ["start", "cancelled"]
