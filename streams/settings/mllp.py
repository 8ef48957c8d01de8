"""The MLLP listener (api/mllp/): where it listens, its limits and its TLS."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class MllpSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_MLLP_")

    host: str = Field(
        "127.0.0.1",
        description="Address `carelog mllp` listens on; beyond loopback, use TLS "
        "(CARELOG_MLLP_TLS_CERT, and CARELOG_MLLP_TLS_CLIENT_CA to authenticate senders).",
    )
    port: int = Field(2575, description="Port `carelog mllp` listens on.")
    max_message_bytes: int = Field(
        1_000_000,
        description="Largest HL7 v2 message over MLLP; a larger one is refused (AR) and its "
        "connection closed, whether or not its end block came.",
    )
    max_connections: int = Field(
        500,
        description="MLLP connections open at once; one more is closed as soon as accepted "
        "(logged, counted in carelog_mllp_connections_refused_total).",
    )
    idle_timeout_seconds: float = Field(
        300.0,
        description="Close an MLLP connection after this long without a message, an ACK or "
        "a frame in progress.",
    )
    frame_timeout_seconds: float = Field(
        30.0,
        description="A frame must end (FS CR) within this many seconds of its start block, "
        "else it is refused (AR when its MSH is readable) and the connection closed (0: off).",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain: MLLP over TLS.")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert.")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle: when set, MLLP clients must present a certificate."
    )
    metrics_port: int | None = Field(
        9101, description="Serve the MLLP listener's Prometheus metrics on this port (0: off)."
    )
