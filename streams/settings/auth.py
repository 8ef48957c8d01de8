"""Bearer tokens the gateway and the notifier accept, and the SMART endpoints they publish."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class AuthSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_AUTH_")

    disabled: bool = Field(
        False, description="Turn bearer-token checks off (development only; logged loudly)."
    )
    jwks_url: str | None = Field(
        None, description="JWKS URL of the token issuer (RS256/ES256 tokens)."
    )
    public_key: str | None = Field(
        None, description="PEM public key (or a path to one) verifying RS256/ES256 tokens."
    )
    hs256_secret: SecretStr | None = Field(
        None, description="Shared secret for HS256 tokens (development)."
    )
    audience: str | None = Field(None, description="Required `aud` claim, when set.")
    issuer: str | None = Field(None, description="Required `iss` claim, when set.")
    smart_authorization_endpoint: str | None = Field(
        None,
        validation_alias="CARELOG_SMART_AUTHORIZATION_ENDPOINT",
        description="OAuth authorize URL published in /.well-known/smart-configuration.",
    )
    smart_token_endpoint: str | None = Field(
        None,
        validation_alias="CARELOG_SMART_TOKEN_ENDPOINT",
        description="OAuth token URL published in /.well-known/smart-configuration.",
    )
