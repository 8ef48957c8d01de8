"""An agent meeting an unreachable broker (the log, carelog.keys) while it computes an
event's outputs tries the same event again instead of crashing: a crash dropped the event
(seen in the broker-restart test: the worker's key store started while the broker was down)."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.errors import BrokerUnavailable
from streams.unreachable import until_reachable_async


def test_the_same_event_is_computed_again_until_the_broker_answers() -> None:
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION))
        if calls == 2:
            raise BrokerUnavailable("could not read the ends of the log")
        return "outputs"

    assert asyncio.run(until_reachable_async("translate", compute)) == "outputs"
    assert calls == 3


def test_any_other_error_is_raised_at_once() -> None:
    calls = 0

    async def compute() -> str:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not the broker")

    with pytest.raises(ValueError, match="a bug"):
        asyncio.run(until_reachable_async("version", compute))
    assert calls == 1
