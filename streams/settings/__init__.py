"""carelog's settings, read once from the environment (CARELOG_ prefix) and typed.

`get_settings()` is the one entry point. The knobs are grouped by concern, one module each
(`settings.gateway.port`, `settings.mllp.tls_cert`, `settings.lake.uri`, ...); every
concern reads its own CARELOG_* variables, whose names did not change with the grouping.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from streams.settings.auth import AuthSettings
from streams.settings.blobs import BlobSettings
from streams.settings.concern import Concern
from streams.settings.fhir import BulkExportSettings, FhirApiSettings
from streams.settings.gateway import DicomSettings, GatewaySettings
from streams.settings.kafka import KafkaSettings
from streams.settings.lake import LakeSettings
from streams.settings.metrics import MetricsSettings
from streams.settings.mllp import MllpSettings
from streams.settings.notifier import NotifierSettings
from streams.settings.privacy import PrivacySettings
from streams.settings.store import StoreSettings
from streams.settings.worker import WorkerSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent

__all__ = ["PROJECT_ROOT", "Concern", "Settings", "concerns", "env_variables", "get_settings"]


class Settings(BaseSettings):
    """Every knob carelog has. Set CARELOG_<NAME> in the environment (or a .env file)."""

    model_config = SettingsConfigDict(env_prefix="CARELOG_", env_file=".env", extra="ignore")

    environment: str = Field(
        "local", description="Topic catalogue overrides to apply: local, test or production."
    )
    var_dir: Path = Field(
        PROJECT_ROOT / "var", description="Runtime state: broker data, logs, pids."
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "carelog",
        description="Downloads kept between checkouts (the broker's jars), outside the repository.",
    )

    # Each concern reads its own variables (ConcernsSource below), so none has a default here.
    kafka: KafkaSettings
    blobs: BlobSettings
    gateway: GatewaySettings
    dicom: DicomSettings
    auth: AuthSettings
    mllp: MllpSettings
    metrics: MetricsSettings
    worker: WorkerSettings
    store: StoreSettings
    fhir: FhirApiSettings
    bulk_export: BulkExportSettings
    lake: LakeSettings
    notifier: NotifierSettings
    privacy: PrivacySettings

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The concerns come last: a concern given by keyword wins over the one read here.
        assert isinstance(dotenv_settings, DotEnvSettingsSource)
        concerns = ConcernsSource(settings_cls, dotenv_settings.env_file)
        return init_settings, env_settings, dotenv_settings, file_secret_settings, concerns

    def amended(self, **changes: Any) -> Settings:
        """A copy with some knobs changed: a top-level one by value (var_dir=...), a concern's
        as a dict of its fields (mllp={"port": 0}); the rest as they are. A name that is not
        a knob raises, so a misspelt (or moved) one cannot pass unnoticed."""
        update: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in type(self).model_fields:
                raise AttributeError(f"Settings has no {name!r}")
            current = getattr(self, name)
            if isinstance(current, Concern) and isinstance(value, dict):
                unknown = set(value) - set(type(current).model_fields)
                if unknown:
                    raise AttributeError(f"Settings.{name} has no {sorted(unknown)}")
                value = current.model_copy(update=value)
            update[name] = value
        return self.model_copy(update=update)

    # Where state lives under var_dir unless a concern names its own place.
    @property
    def fhir_store_file(self) -> Path:
        return self.store.path or self.var_dir / "fhir-store.sqlite"

    @property
    def key_cache_root(self) -> Path:
        return self.privacy.key_cache_dir or self.var_dir / "key-cache"

    @property
    def bulk_export_root(self) -> Path:
        return self.bulk_export.dir or self.var_dir / "bulk-export"

    @property
    def notifier_state_dir(self) -> Path:
        return self.notifier.dir or self.var_dir / "notifier"


class ConcernsSource(PydanticBaseSettingsSource):
    """Reads every concern from the environment and the .env file the Settings was given
    (`Settings(_env_file=None)` reaches the concerns too, which a default_factory would not)."""

    def __init__(self, settings_cls: type[BaseSettings], env_file: Any) -> None:
        super().__init__(settings_cls)
        self.env_file = env_file

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ builds them all

    def __call__(self) -> dict[str, Any]:
        return {name: concern(_env_file=self.env_file) for name, concern in concerns().items()}


@cache
def get_settings() -> Settings:
    return Settings()


def concerns() -> dict[str, type[Concern]]:
    """The concerns of Settings by field name (`"gateway": GatewaySettings`, ...)."""
    return {
        name: field.annotation
        for name, field in Settings.model_fields.items()
        if isinstance(field.annotation, type) and issubclass(field.annotation, Concern)
    }


def env_variables() -> dict[str, str]:
    """Every environment variable carelog reads, with the knob it sets:
    {"CARELOG_GATEWAY_PORT": "gateway.port", "CARELOG_MAX_REQUEST_BYTES":
    "gateway.max_request_bytes", "CARELOG_VAR_DIR": "var_dir", ...}."""
    grouped = concerns()
    found = {
        f"CARELOG_{name.upper()}": name for name in Settings.model_fields if name not in grouped
    }
    for concern_name, concern in grouped.items():
        prefix = concern.model_config.get("env_prefix", "")
        for name, field in concern.model_fields.items():
            alias = field.validation_alias
            env = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
            found[env.upper()] = f"{concern_name}.{name}"
    return found
