"""`make bench` for the log: publish and consume throughput of 2 KB InboundMessages.

Prints the median of three runs for: fastavro encode and decode alone, publish with every
send confirmed by the broker (acks=all, idempotent), and consume + decode.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, TopicPartition

from schemas.events import Channel, Format, InboundMessage, decode_event, encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
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


def bench_publish(settings: Settings, topic: str) -> tuple[float, float]:
    """Encode and append PUBLISH_N events; the clock stops when the last one is confirmed."""
    events = [sample_event(i) for i in range(PUBLISH_N)]
    with EventProducer(settings) as producer:
        producer.send(topic, encode_event(events[0]), "warmup")
        start = time.perf_counter()
        delivered = producer.send_many(
            Outgoing(topic, f"NWH|MRN{i % 500}", encode_event(e)) for i, e in enumerate(events)
        )
        elapsed = time.perf_counter() - start
    assert len(delivered) == PUBLISH_N
    size = sum(len(encode_event(e)) for e in events[:1000]) / 1000
    return PUBLISH_N / elapsed, PUBLISH_N * size / elapsed / 1e6


def bench_consume(settings: Settings, topic: str, expected: int) -> float:
    """Read the whole topic and decode every event; the clock starts at the first message."""
    consumer = Consumer(
        {"bootstrap.servers": settings.bootstrap, "group.id": f"bench-{topic}-{time.time()}",
         "enable.auto.commit": False, "fetch.max.bytes": 52_428_800,
         "queued.max.messages.kbytes": 1_048_576}  # fmt: skip
    )
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    count = 0
    start = 0.0
    while count < expected:
        msgs = consumer.consume(10_000, 1.0)
        if msgs and not start:
            start = time.perf_counter()
        for msg in msgs:
            if msg.error() is None:
                decode_event(msg.value())
                count += 1
    elapsed = time.perf_counter() - start
    consumer.close()
    return count / elapsed


def main() -> None:
    print(f"carelog log benchmark: {PAYLOAD_SIZE} B HL7 v2 payloads in InboundMessage events, "
          f"median of {RUNS} runs")  # fmt: skip
    value, values = median_of(RUNS, bench_encode)
    show("fastavro encode alone", value, values, "events/s")
    value, values = median_of(RUNS, bench_decode)
    show("fastavro decode alone", value, values, "events/s")
    with bench_settings() as settings:
        topics: list[str] = []
        rates: list[tuple[float, float]] = []
        for _ in range(RUNS):
            topics.append(fresh_topic(settings))
            rates.append(bench_publish(settings, topics[-1]))
        by_rate = sorted(rates)
        show("publish, every send confirmed (acks=all)", by_rate[1][0], [r[0] for r in rates], "events/s")
        show("publish, every send confirmed (acks=all)", by_rate[1][1], [r[1] for r in rates], "MB/s")
        consume = [bench_consume(settings, t, PUBLISH_N + 1) for t in topics]
        show("consume + decode", sorted(consume)[1], consume, "events/s")


if __name__ == "__main__":
    main()
