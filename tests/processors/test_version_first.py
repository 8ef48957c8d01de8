"""A partition the worker holds (processors/version_first.py) stays out of the fetch when its
stream's buffer drains, which Faust alone would put back, and loses none of the records
fetched before the hold; an unpaused one goes back as before. With no partition active, the
fetch loop takes up again as soon as one is, not a second later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace

from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from processors.transactions import WorkerConsumer

INBOUND = TP("carelog.inbound.hl7v2", 0)
OTHER = TP("carelog.inbound.fhir", 0)


class _Consumer(WorkerConsumer):
    should_stop = False  # a Service's, read by getmany


def _consumer() -> WorkerConsumer:
    """The worker's consumer with only the partition bookkeeping these methods use."""
    consumer = object.__new__(_Consumer)
    consumer.app = SimpleNamespace(in_recovery=False)  # type: ignore[assignment]
    consumer._active_partitions = {INBOUND, OTHER}
    consumer._paused_partitions = set()
    consumer._buffered_partitions = set()
    consumer.held = set()
    consumer._back = asyncio.Event()
    fetcher = SimpleNamespace(_fetch_waiters=set())  # aiokafka's, which a partition back wakes
    consumer._thread = SimpleNamespace(  # type: ignore[assignment]
        _ensure_consumer=lambda: SimpleNamespace(_fetcher=fetcher),
        thread_loop=SimpleNamespace(call_soon_threadsafe=lambda wake: wake()),
    )  # fmt: skip
    return consumer


def test_a_paused_partition_stays_out_of_the_fetch_when_its_buffer_drains() -> None:
    consumer = _consumer()
    consumer.on_buffer_full(INBOUND)
    consumer.pause_partitions([INBOUND])
    consumer.on_buffer_drop(INBOUND)
    assert INBOUND not in consumer._get_active_partitions()
    consumer.resume_partitions([INBOUND])
    assert INBOUND in consumer._get_active_partitions()


def test_an_unpaused_partition_goes_back_into_the_fetch_when_its_buffer_drains() -> None:
    consumer = _consumer()
    consumer.on_buffer_full(OTHER)
    assert OTHER not in consumer._get_active_partitions()
    consumer.on_buffer_drop(OTHER)
    assert OTHER in consumer._get_active_partitions()
    assert not consumer._buffered_partitions


def test_records_fetched_before_a_pause_are_all_handed_to_the_streams() -> None:
    """ci45's hang: Faust's getmany hands a fetched batch out over many turns of the event loop
    and skipped the records of a partition paused meanwhile, though aiokafka had moved past
    them. A partition held by version_first gets every record fetched before the hold."""
    consumer = _consumer()
    batch = {INBOUND: [0, 1, 2, 3], OTHER: [0, 1]}

    async def getmany(active_partitions: set[TP], timeout: float) -> dict[TP, list[int]]:
        assert active_partitions == {INBOUND, OTHER}
        return batch

    consumer._getmany = getmany  # type: ignore[method-assign]
    consumer.flow_active = True
    consumer.not_waiting_next_records = asyncio.Event()
    consumer.scheduler = DefaultSchedulingStrategy()
    consumer._to_message = lambda tp, record: (tp, record)  # type: ignore[method-assign,assignment]
    consumer.highwater = lambda tp: 0  # type: ignore[method-assign]
    consumer.assignment = lambda: {INBOUND, OTHER}  # type: ignore[method-assign]
    consumer.app = SimpleNamespace(  # type: ignore[assignment]
        in_recovery=False, client_only=False, consumer_generation_id=1,
        monitor=SimpleNamespace(track_tp_end_offset=lambda tp, end: None),
    )  # fmt: skip

    async def drain() -> list[tuple[TP, int]]:
        handed = []
        async for _tp, message in consumer.getmany(timeout=1.0):
            handed.append(message)
            if len(handed) == 1:  # the worker holds its inbound partitions mid-batch
                consumer.hold({INBOUND})
        return handed

    handed = asyncio.run(drain())
    assert sorted(handed) == sorted((tp, n) for tp, records in batch.items() for n in records)
    assert INBOUND not in consumer._get_active_partitions()

    # aiokafka's fetch, on the consumer's thread, waits for records of the partitions active
    # when it began: the release ends that wait, on that thread's loop.
    thread_loop = asyncio.new_event_loop()
    waiting = thread_loop.create_future()
    fetcher = SimpleNamespace(_fetch_waiters={waiting})
    consumer._thread = SimpleNamespace(  # type: ignore[assignment]
        _ensure_consumer=lambda: SimpleNamespace(_fetcher=fetcher),
        thread_loop=SimpleNamespace(call_soon_threadsafe=lambda wake: wake()),
    )  # fmt: skip
    consumer.release()
    assert INBOUND in consumer._get_active_partitions() and not consumer.held
    assert waiting.done()
    thread_loop.close()


def test_a_partition_back_in_the_fetch_ends_the_waits_that_began_without_it() -> None:
    """Faust's fetch loop slept a second whenever no partition was active (inbound held, the
    translated partitions' buffers full), and aiokafka's fetch waited up to a second for
    records of the partitions active when it began, however soon a buffer drained or the
    hold ended."""
    consumer = _consumer()
    fetched: list[set[TP]] = []

    async def getmany(active_partitions: set[TP], timeout: float) -> dict[TP, list[int]]:
        fetched.append(set(active_partitions))
        return {}

    consumer._getmany = getmany  # type: ignore[method-assign]
    consumer.sleep = asyncio.sleep  # type: ignore[method-assign,assignment]  # a Service's, less its stop
    consumer.flow_active = True
    consumer.not_waiting_next_records = asyncio.Event()
    consumer.app = SimpleNamespace(in_recovery=False, client_only=False)  # type: ignore[assignment]
    consumer.assignment = lambda: {INBOUND, OTHER}  # type: ignore[method-assign]
    consumer.hold({INBOUND})
    consumer.on_buffer_full(OTHER)

    async def waited(back_in: float, put_back: Callable[[], None]) -> float:
        asyncio.get_running_loop().call_later(back_in, put_back)
        began = time.monotonic()
        await consumer._wait_next_records(1.0)
        return time.monotonic() - began

    async def main() -> tuple[list[float], bool]:
        aiokafka_waiting = asyncio.get_running_loop().create_future()
        consumer._thread._ensure_consumer()._fetcher._fetch_waiters.add(aiokafka_waiting)
        # The version stage's buffer drains; then (full again) the hold ends.
        drained = await waited(0.05, lambda: consumer.on_buffer_drop(OTHER))
        consumer.on_buffer_full(OTHER)
        released = await waited(0.05, consumer.release)
        return [drained, released], aiokafka_waiting.done()

    waits, aiokafka_woken = asyncio.run(main())
    assert max(waits) < 0.5 and aiokafka_woken
    assert fetched == [{OTHER}, {INBOUND}]
