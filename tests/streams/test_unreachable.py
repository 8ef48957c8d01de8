"""A projection's batch meets a stopped broker (a key lookup): it waits and opens the batch
again, rather than exiting (streams/unreachable.py)."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.errors import BrokerUnavailable
from streams.unreachable import until_reachable


def test_a_batch_is_computed_again_until_the_broker_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("streams.unreachable.time.sleep", waits.append)
    failures = [
        KafkaException(KafkaError(KafkaError._UNKNOWN_PARTITION)),
        BrokerUnavailable("down"),
    ]

    def compute() -> str:
        if failures:
            raise failures.pop(0)
        return "applied"

    assert until_reachable("batch", compute) == "applied"
    assert waits == [0.5, 1.0]


def test_any_other_error_is_raised_at_once() -> None:
    calls = 0

    def compute() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("a bug, not the broker")

    with pytest.raises(ValueError, match="a bug"):
        until_reachable("batch", compute)
    assert calls == 1


def test_a_stop_ends_the_waiting() -> None:
    stop = threading.Event()

    def compute() -> None:
        stop.set()  # e.g. SIGTERM while the broker is away
        raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    with pytest.raises(KafkaException):
        until_reachable("batch", compute, stop)
