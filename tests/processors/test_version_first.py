"""A partition the worker paused (processors/version_first.py) stays out of the fetch when its
stream's buffer drains, which Faust alone would put back; an unpaused one goes back as before."""

from __future__ import annotations

from types import SimpleNamespace

from faust.types import TP

from processors.transactions import WorkerConsumer

INBOUND = TP("carelog.inbound.hl7v2", 0)
OTHER = TP("carelog.inbound.fhir", 0)


def _consumer() -> WorkerConsumer:
    """The worker's consumer with only the partition bookkeeping these methods use."""
    consumer = object.__new__(WorkerConsumer)
    consumer.app = SimpleNamespace(in_recovery=False)  # type: ignore[assignment]
    consumer._active_partitions = {INBOUND, OTHER}
    consumer._paused_partitions = set()
    consumer._buffered_partitions = set()
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
