"""The session broker is a real Kafka broker that holds the topic catalogue as written."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import ConfigResource

from streams.admin import admin_client, existing_topics
from streams.settings import Settings
from streams.topics import catalogue
from tests import kafka_fixture

pytestmark = pytest.mark.kafka

BROKER_DEFAULTS = {"cleanup.policy": "delete"}  # not listed among a topic's own configs


def test_catalogue_is_applied_as_written(kafka_settings: Settings) -> None:
    present = existing_topics(admin_client(kafka_settings))
    for topic in catalogue("test"):
        state = present[topic.name]
        assert state.partitions >= topic.partitions
        for key, value in topic.all_configs().items():
            assert state.configs.get(key, BROKER_DEFAULTS.get(key)) == value, (topic.name, key)


def test_the_local_broker_runs_with_the_threads_it_is_given(kafka_settings: Settings) -> None:
    if not kafka_fixture.session_broker_is_local:
        pytest.skip("the session's broker is not carelog's local one: not configured by it")
    admin = admin_client(kafka_settings)
    broker = ConfigResource(ConfigResource.Type.BROKER, "1")
    configs = admin.describe_configs([broker])[broker].result(timeout=30)
    assert configs["num.network.threads"].value == str(kafka_settings.kafka.network_threads)
    assert configs["num.io.threads"].value == str(kafka_settings.kafka.io_threads)
