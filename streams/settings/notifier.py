"""`carelog notifier`: FHIR Subscriptions (projections/notifier/)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class NotifierSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_NOTIFIER_")

    dir: Path | None = Field(
        None, description="The notifier's state (its SQLite files); default <var_dir>/notifier."
    )
    group_id: str = Field("carelog-notifier", description="Consumer group of the notifier.")
    host: str = Field("127.0.0.1", description="Address the notifier's websocket port listens on.")
    control_host: str = Field(
        "127.0.0.1",
        description="Address the control port listens on: the gateway's only, keep it private "
        "(every call also needs the credential derived from the master key).",
    )
    port: int = Field(8091, description="The notifier's websocket port (path /ws).")
    control_port: int = Field(
        8092,
        description="The notifier's control port ($status, binding tokens): the gateway's only.",
    )
    url: str = Field(
        "http://127.0.0.1:8092",
        description="Where the gateway reaches the notifier's control port.",
    )
    ws_url: str = Field(
        "ws://127.0.0.1:8091/ws", description="The websocket URL clients are told to connect to."
    )
    fhir_base: str = Field(
        "http://127.0.0.1:8080/fhir", description="FHIR base URL named in notification bundles."
    )
    metrics_port: int = Field(9105, description="`carelog notifier` metrics port (0: off).")
    batch_ms: int = Field(20, description="Changes matched together within this time.")
    max_events: int = Field(100, description="Most events in one notification bundle.")
    backoff_min_seconds: float = Field(
        1.0, description="First wait after a failed delivery; doubled per failure..."
    )
    backoff_max_seconds: float = Field(300.0, description="...up to this many seconds.")
    delivery_timeout_seconds: float = Field(
        10.0, description="A rest-hook POST that takes longer has failed."
    )
    token_ttl_seconds: int = Field(
        300, description="How long a websocket binding token may be used."
    )
