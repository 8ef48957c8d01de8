"""How `carelog worker` produces: records are gathered into requests, not sent one by one."""

from __future__ import annotations

from typing import Any

import pytest


def test_worker_producers_linger_to_gather_records_into_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CARELOG_WORKER_PRODUCER_LINGER_SECONDS", "0.007")
    from streams.settings import get_settings

    get_settings.cache_clear()
    try:
        from processors.worker import app

        # Each transactional producer Faust makes takes its settings from this one.
        producer: Any = app.producer
        assert producer._settings_default()["linger_ms"] == 7
    finally:
        get_settings.cache_clear()
