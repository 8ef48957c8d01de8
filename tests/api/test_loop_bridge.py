"""LoopBridge: outcomes handed over from another thread run on the loop, in the order they
came, and a burst of them wakes the loop once rather than once per outcome."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from api.loop_bridge import LoopBridge


def test_a_burst_from_another_thread_runs_on_the_loop_in_order_with_one_wake_up() -> None:
    async def scenario() -> tuple[list[int], set[int], int]:
        loop = asyncio.get_running_loop()
        wake_ups = 0
        original = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any, **kwargs: Any) -> Any:
            nonlocal wake_ups
            wake_ups += 1
            return original(callback, *args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign,assignment]
        bridge = LoopBridge(loop)
        seen: list[int] = []
        threads: set[int] = set()
        all_seen = loop.create_future()

        def record(value: int) -> None:
            seen.append(value)
            threads.add(threading.get_ident())
            if len(seen) == 1000:
                all_seen.set_result(None)

        relays = [bridge.relay(record) for _ in range(1000)]
        # The delivery thread hands over 1000 outcomes while the loop is busy elsewhere.
        sender = threading.Thread(target=lambda: [r(i) for i, r in enumerate(relays)])
        sender.start()
        sender.join()
        await asyncio.wait_for(all_seen, 10)
        return seen, threads, wake_ups

    seen, threads, wake_ups = asyncio.run(scenario())
    assert seen == list(range(1000))
    assert threads == {threading.get_ident()}  # asyncio.run ran the loop on this thread
    assert wake_ups == 1


def test_outcomes_after_a_drain_wake_the_loop_again() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        bridge = LoopBridge(loop)
        seen: list[str] = []
        relay = bridge.relay(seen.append)
        for value in ("first", "second"):
            threading.Thread(target=relay, args=(value,)).start()
            for _ in range(200):
                if value in seen:
                    break
                await asyncio.sleep(0.01)
        return seen

    assert asyncio.run(scenario()) == ["first", "second"]
