"""The base of every concern's settings: one group of knobs, read from the environment."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class Concern(BaseSettings):
    """A group of knobs read from CARELOG_<CONCERN>_<NAME> (env_prefix per subclass) or .env.

    A knob whose variable does not follow its concern's prefix names it as validation_alias
    (the variable names predate the split and deployments set them); validate_by_name keeps
    the field name usable in code (`GatewaySettings(max_request_bytes=...)`).
    """

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", validate_by_name=True, validate_by_alias=True
    )
