"""Is Kafka reachable? A metadata request with a short timeout, remembered for a second so
that probes hammering /readyz never hammer the broker."""

from __future__ import annotations

import time

import anyio
import anyio.to_thread
from confluent_kafka.admin import AdminClient

from schemas.events import Format
from streams.kafka_config import client_config
from streams.settings import Settings
from streams.topics import inbound_topic


class Readiness:
    def __init__(self, settings: Settings, ttl: float = 1.0, timeout: float = 1.0) -> None:
        self._settings = settings
        self._ttl = ttl
        self._timeout = timeout
        self._admin: AdminClient | None = None
        self._checked_at = -1e9
        self._result: tuple[bool, str] = (False, "not checked yet")
        self._lock = anyio.Lock()

    async def check(self) -> tuple[bool, str]:
        """(ready, why) — from a metadata call at most `ttl` seconds old."""
        async with self._lock:  # concurrent probes share one metadata call
            if time.monotonic() - self._checked_at > self._ttl:
                self._result = await anyio.to_thread.run_sync(self._probe)
                self._checked_at = time.monotonic()
            return self._result

    def _probe(self) -> tuple[bool, str]:
        if self._admin is None:
            self._admin = AdminClient(client_config(self._settings))
        try:
            meta = self._admin.list_topics(timeout=self._timeout)
        except Exception as exc:  # KafkaException on timeout or transport failure
            return False, f"kafka unreachable at {self._settings.kafka.bootstrap}: {exc}"
        if not meta.brokers:
            return False, f"no broker answered at {self._settings.kafka.bootstrap}"
        absent = [t for t in (inbound_topic(f) for f in Format) if t not in meta.topics]
        if absent:
            return False, "topics missing (carelog topics create): " + ", ".join(absent)
        return True, f"kafka reachable: {len(meta.brokers)} broker(s)"
