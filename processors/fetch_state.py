"""What the worker has fetched or could fetch and not handled yet: events queued for an
agent, and records aiokafka has not handed to Faust, per partition.

The latter are read from aiokafka's subscription state, without a request: the position
(past what was handed out and past transaction markers) and the end as last fetched (the
last stable offset under read_committed). Both are only as fresh as the last fetch of the
partition.
"""

from __future__ import annotations

from typing import Any

from faust.types import TP


def unread(consumer: Any, tp: TP) -> int | None:
    """Records of `tp` between the position and the end as last fetched; None when either
    is not known yet (not fetched, no position, a rebalance under way)."""
    aio = consumer._thread._ensure_consumer()
    state = aio._subscription.subscription.assignment.state_value(tp)
    end: int | None = consumer.highwater(tp)
    if state is None or end is None or not state.has_valid_position:
        return None
    position: int = state.position
    return max(0, end - position)


def queued(agent: Any) -> int:
    """Events delivered to `agent`'s streams and not taken yet."""
    return sum(actor.stream.channel.queue.qsize() for actor in list(getattr(agent, "_actors", ())))
