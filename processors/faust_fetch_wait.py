"""The broker answers the worker's fetch of partitions with nothing new within 0.1 s, not 1.5 s.

aiokafka keeps one fetch in flight per broker, and leaves out of it the partitions whose
fetched records are not all handed out yet. Under a backlog those are the busy ones: the
next fetch then holds only idle partitions (the other inbound topics, say), which the broker
keeps for the longest wait Faust sets, 1.5 s, and a busy partition handed out meanwhile is
fetched again only after it. In tests/processors/test_worker_version_first.py the version
stage handed out a fetched batch of translated records in tens of milliseconds and then
waited behind such a fetch. version_first's count of waiting records, which reads the
translated partitions' ends as last fetched, was as stale: records committed meanwhile were
not counted, the worker resumed its inbound partitions and translated more: 3,928 and 4,056
translated records waited (two runs of three) where the test allows 2,500.

With 0.1 s a busy partition waits at most that behind an idle fetch; an idle worker makes
about ten fetch requests a second instead of fewer than one.
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread, Consumer

from processors.patched_shapes import require_names, require_source

FETCH_MAX_WAIT_MS = 100

# The consumer Faust builds, with fetch_max_wait_ms=1500 among its settings; aiokafka keeps it
# as _fetch_max_wait_ms until start() builds the fetcher with it.
require_source(AIOKafkaConsumerThread, "_create_worker_consumer", "c2701bfc3e6f6cad", __name__)
require_source(Consumer, "_new_consumer_thread", "0870ec53dea75083", __name__)
require_names(aiokafka.AIOKafkaConsumer, "__init__", ["_fetch_max_wait_ms"], __name__)
require_names(
    aiokafka.AIOKafkaConsumer, "start", ["fetch_max_wait_ms=self._fetch_max_wait_ms"], __name__
)


class ShortFetchWaitThread(AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS
        return consumer


class ShortFetchWaitConsumer(Consumer):
    def _new_consumer_thread(self) -> AIOKafkaConsumerThread:
        return ShortFetchWaitThread(self, loop=self.loop, beacon=self.beacon)
