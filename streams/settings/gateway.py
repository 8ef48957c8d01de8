"""The HTTP gateway (api/): where it listens, how it sends, what it admits."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class GatewaySettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_GATEWAY_")

    host: str = Field("127.0.0.1", description="Address `carelog gateway` listens on.")
    port: int = Field(8080, description="Port `carelog gateway` listens on.")
    workers: int = Field(
        0,
        ge=0,
        description="Processes `carelog gateway` serves with (uvicorn workers sharing the "
        "port): 0 is one per CPU core this process may use, at most 4; 1 is one process.",
    )
    delivery_timeout_ms: int = Field(
        5000,
        description="message.timeout.ms of the gateway's producer: how long a sender waits "
        "for the broker before it is told 503 / AE and to retry.",
    )
    max_request_bytes: int = Field(
        1_000_000,
        validation_alias="CARELOG_MAX_REQUEST_BYTES",
        description="Largest request body the gateway reads; larger ones get 413.",
    )
    rate_limit_per_second: float = Field(
        500.0,
        validation_alias="CARELOG_RATE_LIMIT_PER_SECOND",
        description="Sustained requests per second per client (JWT sub, else IP), over all "
        "the gateway's processes (each of N enforces 1/N of it).",
    )
    rate_limit_burst: int = Field(
        1000,
        validation_alias="CARELOG_RATE_LIMIT_BURST",
        description="Requests a client may send at once (each of N processes: 1/N).",
    )
    access_log: bool = Field(
        True,
        validation_alias="CARELOG_ACCESS_LOG",
        description="One JSON log line per gateway request.",
    )


class DicomSettings(Concern):
    """The gateway's DICOMweb STOW-RS limits (api/dicomweb/)."""

    model_config = SettingsConfigDict(env_prefix="CARELOG_DICOM_")

    max_request_bytes: int = Field(
        256 * 1024 * 1024, description="Largest DICOMweb STOW-RS request body; larger ones get 413."
    )
    max_parts: int = Field(
        1000,
        description="Most instances (multipart parts) in one STOW-RS request; more get 413 "
        "and the request is kept on carelog.rejected.",
    )
