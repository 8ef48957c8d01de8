"""How `carelog worker` produces: records are gathered into requests, not sent one by one."""

from __future__ import annotations

from typing import Any

import pytest


def test_worker_producers_take_linger_batch_size_and_compression_from_the_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELOG_WORKER_PRODUCER_LINGER_SECONDS", "0.007")
    monkeypatch.setenv("CARELOG_WORKER_PRODUCER_MAX_BATCH_BYTES", "65536")
    monkeypatch.setenv("CARELOG_WORKER_PRODUCER_COMPRESSION", "lz4")
    from streams.settings import get_settings

    get_settings.cache_clear()
    try:
        import importlib

        import processors.worker

        app = importlib.reload(processors.worker).app
        # Each transactional producer Faust makes takes its settings from this one.
        producer: Any = app.producer
        settings = producer._settings_default()
        assert settings["linger_ms"] == 7
        assert settings["max_batch_size"] == 65536
        assert settings["compression_type"] == "lz4"
    finally:
        get_settings.cache_clear()
