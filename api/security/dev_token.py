"""Development HS256 tokens and the secret that signs them.

The secret is CARELOG_AUTH_HS256_SECRET when set. Otherwise, outside production, both
`carelog token` and the gateway use a random secret kept in var/auth/dev-hs256-secret
(created on first use, mode 0600), so a local gateway and local tokens match with no setup.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from pathlib import Path

import jwt

from streams.settings import Settings


def dev_secret_file(settings: Settings) -> Path:
    return settings.var_dir / "auth" / "dev-hs256-secret"


def dev_secret(settings: Settings) -> str:
    """The local development secret, created on first use."""
    path = dev_secret_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def signing_secret(settings: Settings) -> str:
    if settings.auth.hs256_secret is not None:
        return settings.auth.hs256_secret.get_secret_value()
    return dev_secret(settings)


def mint_token(
    secret: str,
    scopes: str,
    subject: str = "carelog-dev",
    ttl: int = 3600,
    audience: str | None = None,
    issuer: str | None = None,
    patient: str | None = None,
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject,
        "scope": " ".join(scopes.split()),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": str(uuid.uuid4()),
    }
    if audience:
        claims["aud"] = audience
    if issuer:
        claims["iss"] = issuer
    if patient:
        claims["patient"] = patient  # SMART patient launch context
    return jwt.encode(claims, secret, algorithm="HS256")
