"""The master key that wraps every data key: from CARELOG_MASTER_KEY, or a local dev key.

The master key never reaches the log: carelog.keys holds data keys wrapped (AES-GCM) by it.
In production it must come from the environment (a secret store); elsewhere carelog makes
one under var/ and says loudly that it did.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets

from streams.privacy.aead import KEY_BYTES
from streams.settings import Settings

log = logging.getLogger(__name__)


class MasterKeyError(RuntimeError):
    pass


def master_key(settings: Settings) -> bytes:
    configured = (
        settings.privacy.master_key.get_secret_value() if settings.privacy.master_key else None
    )
    if configured:
        try:
            key = base64.b64decode(configured, validate=True)
        except ValueError as exc:
            raise MasterKeyError(f"CARELOG_MASTER_KEY is not base64: {exc}") from None
        if len(key) != KEY_BYTES:
            raise MasterKeyError(f"CARELOG_MASTER_KEY must be {KEY_BYTES} bytes, got {len(key)}")
        return key
    if settings.environment == "production":
        raise MasterKeyError(
            "CARELOG_MASTER_KEY is not set: production refuses the generated development key"
        )
    path = settings.var_dir / "master.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode())
        log.warning(
            "GENERATED A DEVELOPMENT MASTER KEY at %s: set CARELOG_MASTER_KEY (32 random bytes, "
            "base64) from a secret store before keeping real patient data",
            path,
        )
    return base64.b64decode(path.read_text().strip())


def derived_key(settings: Settings, purpose: bytes) -> bytes:
    """A key for `purpose` that every process holding the master key derives alike
    (HMAC-SHA256): routing pseudonyms, the credential between two of carelog's processes."""
    return hmac.new(master_key(settings), purpose, hashlib.sha256).digest()
