"""Appending events to the log, confirmed: nothing is acknowledged before the broker has it."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from streams.errors import DeliveryFailed
from streams.kafka_config import producer_config
from streams.settings import Settings, get_settings

Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True, slots=True)
class Delivered:
    """Where the broker put an event."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    key: bytes | str | None
    value: bytes
    headers: Headers | None = None


def _delivered(msg: Message) -> Delivered:
    """Where a confirmed message landed (a confirmed message always has all three)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    assert topic is not None and partition is not None and offset is not None
    return Delivered(topic, partition, offset)


OnDelivery = Callable[[Delivered | DeliveryFailed], None]


def _settle_future(future: Future[Delivered], outcome: Delivered | DeliveryFailed) -> None:
    # A future its waiter cancelled (asyncio.wrap_future does, when the awaiting task is
    # cancelled) refuses an outcome: raising here would end the delivery thread itself.
    with contextlib.suppress(InvalidStateError):
        if isinstance(outcome, DeliveryFailed):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class EventProducer:
    """An idempotent, acks=all producer whose sends complete only on the broker's confirmation.

    A background thread serves delivery callbacks, so `send` can be awaited from asyncio,
    waited on from threads, or used in bulk with `send_many`.
    """

    def __init__(self, settings: Settings | None = None, **overrides: Any) -> None:
        self._producer = Producer(producer_config(settings or get_settings(), **overrides))
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _poll_loop(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    def produce(self, out: Outgoing, then: OnDelivery) -> None:
        """Queue one event; `then` is called once, on the delivery thread, with where the
        broker put it or with the DeliveryFailed saying why it did not confirm it.

        The hot path (gateway, MLLP): no Future and no lock per event. `then` must be quick
        and thread-safe (hand the outcome to an event loop, say); raises DeliveryFailed when
        the event cannot even be queued.
        """
        topic = out.topic

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                then(DeliveryFailed(f"{topic}: broker did not confirm the event: {err.str()}"))
            else:
                then(_delivered(msg))

        while True:
            try:
                self._producer.produce(
                    topic, out.value, out.key, headers=out.headers, on_delivery=on_delivery
                )
                return
            except BufferError:  # local queue full: let the poller drain deliveries, then retry
                time.sleep(0.001)
            except Exception as exc:
                raise DeliveryFailed(f"{topic}: could not queue the event: {exc}") from exc

    def submit(self, out: Outgoing) -> Future[Delivered]:
        """Queue one event; the future resolves when the broker confirms it, or fails."""
        future: Future[Delivered] = Future()
        self.produce(out, partial(_settle_future, future))
        return future

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: Headers | None = None,
        timeout: float = 60.0,
    ) -> Delivered:
        """Append one event and return once the broker has it (raises DeliveryFailed if not)."""
        return self.submit(Outgoing(topic, key, value, headers)).result(timeout)

    async def send_async(
        self,
        topic: str,
        value: bytes,
        key: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> Delivered:
        return await asyncio.wrap_future(self.submit(Outgoing(topic, key, value, headers)))

    def send_many(self, events: Iterable[Outgoing], timeout: float = 120.0) -> list[Delivered]:
        """Append many events; return when every one is confirmed, in the order given.

        One callback and one result slot per event instead of a Future each: this is the
        bulk path (benchmarks, replays, `carelog publish`), where that overhead dominates.
        """
        results: list[Delivered | None] = []
        failures: list[str] = []
        state = {"completed": 0, "total": -1}
        done = threading.Event()

        def on_delivery(index: int, err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(f"{msg.topic()}: {err.str()}")
            else:
                results[index] = _delivered(msg)
            state["completed"] += 1
            if state["completed"] == state["total"]:
                done.set()

        produce = self._producer.produce
        for index, out in enumerate(events):
            results.append(None)
            callback = partial(on_delivery, index)
            while True:
                try:
                    produce(
                        out.topic, out.value, out.key, headers=out.headers, on_delivery=callback
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain, then retry
                    time.sleep(0.001)
        # Callbacks run on the poller thread; whichever side sees the last one sets `done`.
        state["total"] = len(results)
        if state["completed"] == state["total"]:
            done.set()
        if not done.wait(timeout):
            raise DeliveryFailed(
                f"{state['total'] - state['completed']} of {state['total']} events were not "
                f"confirmed within {timeout:.0f}s"
            )
        if failures:
            raise DeliveryFailed(
                f"{len(failures)} of {len(results)} events were not confirmed, first: {failures[0]}"
            )
        return [r for r in results if r is not None]

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for queued events; returns how many are still undelivered."""
        return int(self._producer.flush(timeout))

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._closed.set()
        self._poller.join()

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
