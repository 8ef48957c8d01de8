"""Prometheus /metrics of the processes other than the gateway (which serves its own on its
port). Each process's port is in its own concern (worker.metrics_port, ...). A port already
in use is logged and that process runs without metrics."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class MetricsSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_METRICS_")

    host: str = Field(
        "127.0.0.1", description="Address the processes' metrics endpoints listen on."
    )
    lag_interval_seconds: float = Field(
        5.0,
        description="How often the worker, projection and sink read their consumer lag (in "
        "the background); /metrics serves the last reading.",
    )
