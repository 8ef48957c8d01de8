"""Partitions of the keyed-state topics on a real broker: `carelog topics create` never moves
a resource away from the partition that holds its versions."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Producer

from streams.admin import PartitionsRefused, apply_catalogue, partition_counts
from streams.kafka_config import producer_config
from streams.settings import Settings
from streams.topics import Topic

pytestmark = pytest.mark.kafka


def _topic(name: str, partitions: int) -> Topic:
    return Topic(name, "ResourceType/id", "ResourceChanged", partitions, 1, 1)


def _append_one(settings: Settings, topic: str) -> None:
    producer = Producer(producer_config(settings))
    producer.produce(topic, b"a change", b"Patient/1")
    assert producer.flush(10) == 0


def test_partitions_are_never_added_to_a_changes_topic_that_holds_records(
    kafka_settings: Settings,
) -> None:
    # A replay's shadow topics end like the live ones: the same rule holds for them.
    changes = f"carelog.shadow.t{uuid.uuid4().hex[:8]}.fhir.changes"
    apply_catalogue([_topic(changes, 2)], kafka_settings)
    _append_one(kafka_settings, changes)

    with pytest.raises(PartitionsRefused, match=r"has 2 partitions and holds records.*start again"):
        apply_catalogue([_topic(changes, 6)], kafka_settings)
    assert partition_counts(kafka_settings, (changes,)) == {changes: 2}


def test_partitions_are_added_to_an_empty_changes_topic_and_to_an_inbound_one(
    kafka_settings: Settings,
) -> None:
    run = uuid.uuid4().hex[:8]
    changes, inbound = f"carelog.shadow.t{run}.fhir.changes", f"test.t{run}.inbound.hl7v2"
    apply_catalogue([_topic(changes, 2), _topic(inbound, 2)], kafka_settings)
    _append_one(kafka_settings, inbound)  # the order caveat of inbound keys is documented

    actions = apply_catalogue([_topic(changes, 4), _topic(inbound, 4)], kafka_settings)
    assert actions == {changes: "updated: partitions 2->4", inbound: "updated: partitions 2->4"}
    assert partition_counts(kafka_settings, (changes, inbound, "no.such.topic")) == {
        changes: 4,
        inbound: 4,
    }
