"""Under a backlog the worker versions what it translated before translating more
(processors/version_first.py): the translated records waiting for the version stage stay
bounded, and the rest waits on the inbound topic.

The worker runs in a consumer group of its own that starts at the ends of its input topics:
what other tests' workers left on the shared topics (a killed worker's translated records
not yet versioned, say) is neither its work nor counted as waiting.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.events import Channel, Format, InboundMessage
from streams.kafka_config import reader_config
from streams.settings import Settings
from streams.topics import FHIR_TRANSLATED, inbound_topic
from tests.bench.bench_e2e import hl7_message
from tests.processors.test_worker_pipeline import publish
from tests.processors.worker_harness import Worker, start_group_at_ends

pytestmark = pytest.mark.kafka

MESSAGES = 600  # ORU^R01 of 4 OBX: 8 translated records each
PAUSE_ABOVE = 200
BUFFER = 16  # inbound messages queued for the translate stage (Faust's stream buffer)
# What may wait beyond PAUSE_ABOVE: the translate stage's queue and what aiokafka fetched of
# each inbound partition before the pause (8 records a message), and the version stage's
# handled but not yet committed records (read here from the group's committed offsets).
BOUND = 2_500


def _oru(n: int, run: str) -> InboundMessage:
    return InboundMessage.received(
        hl7_message(1, f"VF{run}{n}", f"VF-{run}-{n}"), channel=Channel.mllp,
        format=Format.hl7v2, content_type="application/hl7-v2", sender="test-lab",
    )  # fmt: skip


def _sums(settings: Settings, group: str) -> tuple[int, int, int, int, int]:
    """(ends of carelog.fhir.translated, the group's committed offsets on it, ends of the
    HL7 v2 inbound topic, the group's committed offsets on it), each summed over partitions,
    and the number of translated partitions."""
    reader = Consumer(reader_config(settings, "version-first", **{"group.id": group}))
    try:
        sums, partitions = [], 0
        for topic in (FHIR_TRANSLATED, inbound_topic(Format.hl7v2)):
            parts = reader.list_topics(topic, timeout=10).topics[topic].partitions
            tps = [TopicPartition(topic, p) for p in parts]
            ends = sum(reader.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
            done = sum(max(0, tp.offset) for tp in reader.committed(tps, timeout=10))
            sums += [ends, done]
            partitions = partitions or len(tps)
        return sums[0], sums[1], sums[2], sums[3], partitions
    finally:
        reader.close()


def test_translated_records_waiting_for_the_version_stage_stay_bounded(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    group = f"carelog-processors-vf-{run}"  # Faust's group id is its app id
    start_group_at_ends(kafka_settings, group)
    publish(kafka_settings, [_oru(n, run) for n in range(MESSAGES)], key=f"lab-{run}")
    worker = Worker(tmp_path / "version-first", {
        "CARELOG_PROCESSORS_APP_ID": group,
        "CARELOG_WORKER_VERSION_FIRST_RECORDS": str(PAUSE_ABOVE),
        "CARELOG_WORKER_STREAM_BUFFER": str(BUFFER),
    })  # fmt: skip
    worker.start()
    waiting: list[int] = []
    try:
        deadline = time.monotonic() + 240
        while True:
            sums = _sums(kafka_settings, group)
            translated_end, versioned, inbound_end, translated_from, partitions = sums
            waiting.append(translated_end - versioned)
            # A partition's last transaction marker is committed past only when a later
            # fetch finds it: at most one offset a partition is left at the end.
            if inbound_end == translated_from and translated_end - versioned <= partitions:
                break
            assert time.monotonic() < deadline, (sums, waiting, worker.tail())
            time.sleep(0.25)
    finally:
        worker.stop()
    # The worker went through the whole backlog: every message was translated and versioned.
    assert len(waiting) > 8, "too few looks to see the backlog drain"
    assert max(waiting) < BOUND, f"{max(waiting)} {waiting}"
