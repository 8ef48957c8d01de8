"""The worker's partitioner puts every key where aiokafka's (and the Java client's) would."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from streams.partitioner import kafka_partitioner, murmur2


def test_the_hash_is_the_java_clients_for_every_tail_length() -> None:
    rng = random.Random(11)
    for length in range(0, 70):
        for _ in range(20):
            data = rng.randbytes(length)
            assert murmur2(data) == aiokafka_murmur2(data), data


def test_keys_land_on_the_same_partitions() -> None:
    partitions = list(range(12))
    keys = [f"Observation/{i:08x}-{i * 7919:x}".encode() for i in range(500)]
    assert [kafka_partitioner(k, partitions[:6], []) for k in keys] == [
        DefaultPartitioner()(k, partitions[:6], []) for k in keys
    ]
    assert {kafka_partitioner(k, partitions, partitions) for k in keys} == set(partitions)
    assert murmur2(b"21") - 2**32 == -973932308  # Kafka's UtilsTest: murmur2("21")
