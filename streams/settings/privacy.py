"""PHI encryption and erasure (streams/privacy/, api/erasure/)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class PrivacySettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_")

    key_store: Literal["kafka", "memory", "off"] = Field(
        "kafka",
        description="Where the data keys that seal PHI in events live: kafka (the compacted "
        "topic carelog.keys, shared by every process), memory (this process only: tests) or "
        "off (events in clear, as before v2 of the schemas; nothing can then be erased).",
    )
    master_key: SecretStr | None = Field(
        None,
        description="32 random bytes, base64: wraps every data key on carelog.keys. Required "
        "in production; elsewhere a development key is generated in <var_dir>/master.key.",
    )
    key_refresh_seconds: float = Field(
        2.0, description="Each process reads key shreds made elsewhere within this long."
    )
    message_keys_kept: int = Field(
        200_000,
        description="Per-message keys a process that opens them keeps in memory, the most "
        "recent ones (about 300 bytes each); an older one is read again when needed.",
        gt=0,
    )
    key_cache_dir: Path | None = Field(
        None,
        description="Where each process keeps its copy of carelog.keys (the keys still wrapped, "
        "and how far it read) so that a restart reads only the key records that came since; "
        "default <var_dir>/key-cache.",
    )
    keys_kept: int = Field(
        100_000,
        description="Patient and type keys a process keeps unwrapped in memory, the ones used "
        "last; another is read from its key cache when used.",
        gt=0,
    )
