"""Consumer lag against the real broker: a group with known committed offsets."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from projections.fhir_store.offsets_file import applied_offsets
from projections.fhir_store.schema import DDL
from streams.admin import admin_client
from streams.lag import committed_offsets, count_pending, group_lag, lag_of, total
from streams.settings import PROJECT_ROOT, Settings
from tests.kafka_fixture import private_broker

pytestmark = pytest.mark.kafka


def _topic_with(settings: Settings, counts: list[int]) -> str:
    """A fresh topic with counts[p] records on partition p."""
    topic = f"test.lag.{uuid.uuid4().hex[:8]}"
    admin = admin_client(settings)
    admin.create_topics([NewTopic(topic, num_partitions=len(counts), replication_factor=1)])[
        topic
    ].result(15)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    for partition, n in enumerate(counts):
        for i in range(n):
            producer.produce(topic, value=f"{partition}-{i}".encode(), partition=partition)
    assert producer.flush(15) == 0
    return topic


def _commit(settings: Settings, group: str, offsets: list[TopicPartition]) -> None:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": group})
    consumer.commit(offsets=offsets, asynchronous=False)
    consumer.close()


def test_group_lag_is_end_minus_committed_and_all_of_an_uncommitted_partition(
    kafka_settings: Settings,
) -> None:
    topic = _topic_with(kafka_settings, [5, 3, 0])
    group = f"test-lag-{uuid.uuid4().hex[:8]}"
    _commit(kafka_settings, group, [TopicPartition(topic, 0, 2)])
    admin = admin_client(kafka_settings)

    assert committed_offsets(kafka_settings, group, [(topic, 0), (topic, 1)]) == {(topic, 0): 2}
    lags = group_lag(kafka_settings, admin, group, [topic])
    assert [(p.partition, p.next_offset, p.end, p.lag) for p in lags] == [
        (0, 2, 5, 3),
        (1, None, 3, 3),  # nothing committed: the reader starts at the beginning
        (2, None, 0, 0),
    ]
    assert total(lags) == 6

    _commit(kafka_settings, group, [TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 3)])
    assert total(group_lag(kafka_settings, admin, group, [topic])) == 0


def test_lag_of_a_group_on_a_fresh_broker_is_an_answer_never_a_crash() -> None:
    """AdminClient.list_consumer_group_offsets crashed the process (SIGSEGV) on a fresh broker,
    before the group coordinator existed; run in a child so a crash fails only this test."""
    with private_broker() as bootstrap:
        done = subprocess.run(
            [sys.executable, "-c", _LAG_OF_UNKNOWN_GROUP.format(bootstrap=bootstrap)],
            cwd=PROJECT_ROOT, capture_output=True, timeout=90,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert done.stdout.split()[-1] in (b"0", b"unavailable")  # an empty topic: nothing waits


_LAG_OF_UNKNOWN_GROUP = """
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from streams.admin import admin_client
from streams.errors import BrokerUnavailable
from streams.lag import group_lag
from streams.settings import Settings
from streams.settings.kafka import KafkaSettings

s = Settings(kafka=KafkaSettings(cluster="{bootstrap}"))
admin = admin_client(s)
admin.create_topics([NewTopic("t", num_partitions=1, replication_factor=1)])["t"].result(30)
try:
    print(sum(p.lag for p in group_lag(s, admin, "never-seen-group", ["t"], 10.0)))
except BrokerUnavailable:
    print("unavailable")
"""


def test_store_offsets_give_the_projection_lag(kafka_settings: Settings, tmp_path: Path) -> None:
    """The projection keeps "last offset applied" in its store file, not in a group."""
    topic = _topic_with(kafka_settings, [4])
    store = tmp_path / "store.sqlite"
    assert applied_offsets(store) == {}
    with sqlite3.connect(store) as conn:  # the store's own tables
        conn.executescript(DDL)
        conn.execute("INSERT INTO offsets VALUES (?, 0, 1)", (topic,))
    assert applied_offsets(store) == {(topic, 0): 2}
    [lag] = lag_of(admin_client(kafka_settings), applied_offsets(store), [topic])
    assert (lag.next_offset, lag.end, lag.lag) == (2, 4, 2)


def test_commit_markers_of_transactions_are_not_counted_as_lag(kafka_settings: Settings) -> None:
    """carelog.fhir.changes is written in transactions: each ends with a marker that takes an
    offset. A reader that committed "last record + 1" is caught up, not one behind."""
    topic = _topic_with(kafka_settings, [0])
    producer = Producer({"bootstrap.servers": kafka_settings.kafka.bootstrap,
                         "transactional.id": f"test-lag-{uuid.uuid4().hex[:8]}"})  # fmt: skip
    producer.init_transactions(15)
    for commit in (True, False, True):  # records 0-1, aborted 3-4, records 6-7 (+ markers)
        producer.begin_transaction()
        for i in range(2):
            producer.produce(topic, value=str(i).encode(), partition=0)
        producer.flush(15)  # on the log before the abort (unsent records would be purged)
        producer.commit_transaction(15) if commit else producer.abort_transaction(15)
    group = f"test-lag-{uuid.uuid4().hex[:8]}"
    admin = admin_client(kafka_settings)

    _commit(kafka_settings, group, [TopicPartition(topic, 0, 8)])  # after the last record
    deadline = time.monotonic() + 10  # the coordinator writes markers after commit returns
    while (
        gap := group_lag(kafka_settings, admin, group, [topic])[0]
    ).end < 9 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert (gap.next_offset, gap.end, gap.lag) == (8, 9, 1)  # the offsets alone: a marker
    [counted] = count_pending(kafka_settings, [gap])
    assert (counted.pending, counted.lag) == (0, 0)

    _commit(kafka_settings, group, [TopicPartition(topic, 0, 2)])  # read the first transaction
    [counted] = count_pending(kafka_settings, group_lag(kafka_settings, admin, group, [topic]))
    assert counted.lag == 2  # the aborted records are never handed to a reader
