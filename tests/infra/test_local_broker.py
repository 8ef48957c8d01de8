"""The session broker is a real Kafka broker that holds the topic catalogue as written."""

from __future__ import annotations

import pytest

from streams.admin import admin_client, existing_topics
from streams.settings import Settings
from streams.topics import catalogue

pytestmark = pytest.mark.kafka

BROKER_DEFAULTS = {"cleanup.policy": "delete"}  # not listed among a topic's own configs


def test_catalogue_is_applied_as_written(kafka_settings: Settings) -> None:
    present = existing_topics(admin_client(kafka_settings))
    for topic in catalogue("test"):
        state = present[topic.name]
        assert state.partitions >= topic.partitions
        for key, value in topic.all_configs().items():
            assert state.configs.get(key, BROKER_DEFAULTS.get(key)) == value, (topic.name, key)
