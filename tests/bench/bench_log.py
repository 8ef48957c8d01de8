"""`make bench` for the log: publish and consume throughput of 2 KB InboundMessages.

Prints the median of three runs for: fastavro encode and decode alone, publish with every
send confirmed by the broker (acks=all, idempotent), and consume + decode.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from schemas.events import Channel, Format, InboundMessage
from streams.event_codec import decode_event, encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.settings.kafka import KafkaSettings
from tests.bench.common import RUNS, bench_settings, fresh_topic, median_of, show

PAYLOAD_SIZE = 2048
CODEC_N = 50_000
PUBLISH_N = 200_000


def sample_event(i: int) -> InboundMessage:
    head = f"MSH|^~\\&|LAB|NWH|CARELOG|CARELOG|20261106071500||ORU^R01^ORU_R01|{i}|P|2.5.1\r"
    obx = "OBX|1|NM|718-7^Hemoglobin^LN||13.9|g/dL^g/dL^UCUM|13.0-17.7|N|||F\r"
    body = (head + obx * 40)[:PAYLOAD_SIZE].encode()
    return InboundMessage.received(
        body, channel=Channel.mllp, format=Format.hl7v2,
        content_type="x-application/hl7-v2+er7", sender="bench", idempotency_key=str(i),
    )  # fmt: skip


def bench_encode() -> float:
    events = [sample_event(i) for i in range(CODEC_N)]
    start = time.perf_counter()
    for e in events:
        encode_event(e)
    return CODEC_N / (time.perf_counter() - start)


def bench_decode() -> float:
    blobs = [encode_event(sample_event(i)) for i in range(CODEC_N)]
    start = time.perf_counter()
    for b in blobs:
        decode_event(b)
    return CODEC_N / (time.perf_counter() - start)


def _publish_share(bootstrap: str, topic: str, first: int, count: int, go: Any) -> None:
    settings = Settings(kafka=KafkaSettings(cluster=bootstrap))
    events = [sample_event(i) for i in range(first, first + count)]
    with EventProducer(settings) as producer:
        producer.send(topic, encode_event(events[0]), "warmup")
        go.wait()
        delivered = producer.send_many(
            Outgoing(topic, f"NWH|MRN{i % 500}", encode_event(e)) for i, e in enumerate(events)
        )
    assert len(delivered) == count


def bench_publish(settings: Settings, topic: str, processes: int) -> tuple[float, float]:
    """Encode and append PUBLISH_N events from `processes` producers; the clock stops when
    the last event is confirmed by the broker."""
    ctx = mp.get_context("fork")
    go = ctx.Event()
    share = PUBLISH_N // processes
    procs = [
        ctx.Process(
            target=_publish_share, args=(settings.kafka.bootstrap, topic, i * share, share, go)
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    time.sleep(3)  # let every producer build its events and connect
    start = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    elapsed = time.perf_counter() - start
    size = len(encode_event(sample_event(0)))
    return PUBLISH_N / elapsed, PUBLISH_N * size / elapsed / 1e6


def _consume_share(bootstrap: str, topic: str, partitions: list[int], out: Any) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.max.bytes": 52_428_800,
            "queued.max.messages.kbytes": 1_048_576,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    count, at_end = 0, set()
    start = time.perf_counter()
    while len(at_end) < len(partitions):
        for msg in consumer.consume(10_000, 1.0):
            if msg.error() is None:
                decode_event(msg.value())
                count += 1
            else:
                at_end.add(msg.partition())
    out.put((count, start, time.perf_counter()))
    consumer.close()


def bench_consume(settings: Settings, topic: str, processes: int) -> float:
    """Read the whole topic with `processes` consumers, decoding every event."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    parts = list(range(6))
    procs = [
        ctx.Process(
            target=_consume_share, args=(settings.kafka.bootstrap, topic, parts[i::processes], out)
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    count = sum(r[0] for r in results)
    assert count >= PUBLISH_N
    return count / (max(r[2] for r in results) - min(r[1] for r in results))


def main() -> None:
    print(f"carelog log benchmark: {PAYLOAD_SIZE} B HL7 v2 payloads in InboundMessage events, "
          f"median of {RUNS} runs")  # fmt: skip
    value, values = median_of(RUNS, bench_encode)
    show("fastavro encode alone", value, values, "events/s")
    value, values = median_of(RUNS, bench_decode)
    show("fastavro decode alone", value, values, "events/s")
    with bench_settings() as settings:
        for processes in (1, 2):
            topics: list[str] = []
            rates: list[tuple[float, float]] = []
            for _ in range(RUNS):
                topics.append(fresh_topic(settings))
                rates.append(bench_publish(settings, topics[-1], processes))
            by_rate = sorted(rates)
            label = f"publish, each confirmed (acks=all), {processes} process(es)"
            show(label, by_rate[1][0], [r[0] for r in rates], "events/s")
            show(label, by_rate[1][1], [r[1] for r in rates], "MB/s")
            consume = [bench_consume(settings, t, processes) for t in topics]
            show(
                f"consume + decode, {processes} process(es)",
                sorted(consume)[1],
                consume,
                "events/s",
            )


if __name__ == "__main__":
    main()
