"""Where a message's time goes between the senders and the FHIR store, hop by hop.

A read_committed reader beside the pipeline (a thread of the bench) sees each record of the
inbound topics, carelog.fhir.translated and carelog.fhir.changes when its transaction
commits; the record's timestamp (CreateTime) says when its producer sent it. For a tracked
Patient that gives, on one wall clock (every process runs on this machine):

    sent -> inbound appended (the gateway's / MLLP's produce; about the ACK)
         -> translated sent (the worker read it, translated it, sent the resources)
         -> translated readable (the translate stage's transaction committed)
         -> change sent (the version stage read it, versioned it, sent the change)
         -> change readable (the version stage's transaction committed)
         -> readable over /fhir (the projection applied it; the bench's poller saw it, within
            its 100 ms poll interval)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from schemas.codec import AvroCodec
from schemas.events import Format, ResourceTranslated, from_record
from streams.kafka_config import reader_config
from streams.settings import Settings
from streams.topics import FHIR_CHANGES, FHIR_TRANSLATED, inbound_topic

_codec = AvroCodec()
INBOUND = tuple(inbound_topic(f) for f in Format)
HOPS = (
    ("inbound appended", "sent", "inbound_sent"),
    ("translated sent", "inbound_sent", "translated_sent"),
    ("translated readable (commit)", "translated_sent", "translated_seen"),
    ("change sent", "translated_seen", "change_sent"),
    ("change readable (commit)", "change_sent", "change_seen"),
    ("readable over /fhir", "change_seen", "readable"),
)


@dataclass
class Hops:
    """Wall-clock times (s) of one tracked Patient's first version at each hop."""

    inbound_sent: float | None = None
    translated_sent: float | None = None
    translated_seen: float | None = None
    change_sent: float | None = None
    change_seen: float | None = None


class HopTracer:
    """Reads the pipeline's topics from their ends at start, noting the tracked Patients."""

    def __init__(self, settings: Settings, tracked: Callable[[str], bool]) -> None:
        self.tracked = tracked  # is this Patient id one of the bench's samples?
        self.hops: dict[str, Hops] = {}
        self._inbound: dict[tuple[str, int, int], float] = {}  # (topic, partition, offset) -> sent
        self._waiting: dict[tuple[str, int, int], list[Hops]] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            reader_config(settings, "bench-hops", **{"fetch.wait.max.ms": 50})
        )
        meta = self._consumer.list_topics(timeout=15).topics
        self._consumer.assign([
            TopicPartition(t, p, OFFSET_END)
            for t in (*INBOUND, FHIR_TRANSLATED, FHIR_CHANGES) if t in meta
            for p in meta[t].partitions
        ])  # fmt: skip
        self._thread = threading.Thread(target=self._run, name="hop-tracer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._consumer.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            # consume(n, timeout) waits for n messages or the whole timeout: poll for the
            # first, so that a record is seen (timed) when it arrives.
            batch = self._consumer.consume(1000, 0)
            if not batch:
                first = self._consumer.poll(0.05)
                batch = [first] if first is not None else []
            for msg in batch:
                if msg.error() is None:
                    self._note(msg.topic() or "", msg.partition() or 0, msg.offset() or 0,
                               msg.key() or b"", msg.value() or b"", msg.timestamp()[1] / 1000)  # fmt: skip

    def _note(self, topic: str, partition: int, offset: int, key: bytes, value: bytes,
              sent: float) -> None:  # fmt: skip
        seen = time.time()
        if topic in INBOUND:
            self._inbound[(topic, partition, offset)] = sent
            for hops in self._waiting.pop((topic, partition, offset), []):
                hops.inbound_sent = sent
            return
        if not key.startswith(b"Patient/"):
            return
        pid = key[len(b"Patient/") :].decode()
        if not self.tracked(pid):
            return
        hops = self.hops.setdefault(pid, Hops())
        if topic == FHIR_TRANSLATED and hops.translated_seen is None:
            hops.translated_sent, hops.translated_seen = sent, seen
            # the metadata only: the sealed content needs the system's keys, not wanted here
            event = from_record(*_codec.decode(value))
            if isinstance(event, ResourceTranslated):
                where = (event.inbound_topic, event.inbound_partition, event.inbound_offset)
                if where in self._inbound:
                    hops.inbound_sent = self._inbound[where]
                else:  # read the translated record first: the inbound one comes later
                    self._waiting.setdefault(where, []).append(hops)
        elif topic == FHIR_CHANGES and hops.change_seen is None:
            hops.change_sent, hops.change_seen = sent, seen
