"""The session broker is a real Kafka broker that accepts the topic catalogue."""

from __future__ import annotations

from streams.admin import admin_client, existing_topics
from streams.settings import Settings
from streams.topics import catalogue


def test_catalogue_is_applied_with_log_topics_kept_forever(kafka_settings: Settings) -> None:
    present = existing_topics(admin_client(kafka_settings))
    for topic in catalogue("test"):
        state = present[topic.name]
        assert state.partitions >= topic.partitions
        if topic.name != "carelog.schemas":
            assert state.configs["retention.ms"] == "-1"
        else:
            assert state.configs["cleanup.policy"] == "compact"
