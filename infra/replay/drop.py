"""`carelog replay drop NAME`: delete the shadow's topics and files; the live ones are not
touched (only carelog.shadow.<name>.* topics and var/shadow/<name>.* files are named)."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka import KafkaException

from infra.replay.names import Shadow
from streams.admin import admin_client, existing_topics
from streams.settings import Settings


def drop(settings: Settings, shadow: Shadow, timeout: float = 30.0) -> list[str]:
    """What was removed."""
    admin = admin_client(settings)
    topics = [name for name in existing_topics(admin) if name.startswith(shadow.prefix)]
    removed: list[str] = []
    if topics:
        for name, future in admin.delete_topics(topics, operation_timeout=timeout).items():
            try:
                future.result(timeout)
                removed.append(f"topic {name}")
            except KafkaException as exc:
                if "UNKNOWN_TOPIC" not in str(exc):
                    raise
    for path in (shadow.store, shadow.manifest):
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            if file.exists():
                file.unlink()
                removed.append(f"file {file}")
    return removed
