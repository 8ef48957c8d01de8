"""librdkafka settings shared by every carelog client."""

from __future__ import annotations

import uuid
from typing import Any

from streams.settings import Settings


def client_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": settings.kafka.bootstrap,
        **settings.kafka.client_config,
        **overrides,
    }


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    return client_config(
        settings,
        **{
            # Idempotence keeps retries from duplicating or reordering events per partition;
            # acks=all means "on the log" is "on every in-sync replica".
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            # The Java client's partitioner (murmur2), also used by aiokafka under Faust: one
            # key lands on one partition whichever client appended it.
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "batch.size": 1_000_000,
            "message.max.bytes": settings.kafka.message_max_bytes + 64 * 1024,
            "message.timeout.ms": 30_000,
            **overrides,
        },
    )


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    return client_config(
        settings,
        **{
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            # Offsets are stored by hand only after the handler returned, then committed in
            # the background: a crash replays what was not handled and skips nothing.
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,
            "auto.commit.interval.ms": 1000,
            "isolation.level": "read_committed",
            "fetch.max.bytes": 52_428_800,
            **overrides,
        },
    )


def reader_config(settings: Settings, purpose: str, **overrides: Any) -> dict[str, Any]:
    """A reader that assigns itself partitions and keeps its own position (a scan, a
    projection with offsets in its own file): a fresh group id it never joins, nothing
    committed to the broker, and only committed records (aborted transactions never show)."""
    return client_config(
        settings,
        **{
            "group.id": f"carelog-{purpose}-{uuid.uuid4()}",  # never joined: assign() only
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            **overrides,
        },
    )
