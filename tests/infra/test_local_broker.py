"""The session broker is a real Kafka broker that holds the topic catalogue as written."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import ConfigResource

from streams.admin import admin_client, existing_topics
from streams.settings import KafkaSettings, Settings
from streams.topics import catalogue
from tests.kafka_fixture import stoppable_broker

pytestmark = pytest.mark.kafka

BROKER_DEFAULTS = {"cleanup.policy": "delete"}  # not listed among a topic's own configs


def test_catalogue_is_applied_as_written(kafka_settings: Settings) -> None:
    present = existing_topics(admin_client(kafka_settings))
    for topic in catalogue("test"):
        state = present[topic.name]
        assert state.partitions >= topic.partitions
        for key, value in topic.all_configs().items():
            assert state.configs.get(key, BROKER_DEFAULTS.get(key)) == value, (topic.name, key)


def test_the_local_broker_runs_with_the_threads_it_is_given() -> None:
    # A broker of its own: the session's may be a container or a configured cluster.
    with stoppable_broker() as broker:
        given = broker.settings.kafka
        admin = admin_client(Settings(kafka=KafkaSettings(cluster=broker.bootstrap)))
        resource = ConfigResource(ConfigResource.Type.BROKER, "1")
        configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["num.network.threads"].value == str(given.network_threads)
    assert configs["num.io.threads"].value == str(given.io_threads)
