"""Patient identifiers that must stay in clear for routing (Kafka keys), made pseudonymous.

A keyed hash (HMAC-SHA-256 with the master key) keeps one patient's messages on one partition
in order while the key on the log names no MRN. With key_store=off it is the identifier.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cache

from streams.privacy.master import derived_key
from streams.settings import get_settings


@cache
def _secret() -> bytes | None:
    settings = get_settings()
    if settings.privacy.key_store == "off":
        return None
    return derived_key(settings, b"carelog-routing-key")


def pseudonym(identifier: str) -> str:
    secret = _secret()
    if secret is None:
        return identifier
    return "p-" + hmac.new(secret, identifier.encode(), hashlib.sha256).hexdigest()[:32]


def forget_secret() -> None:
    """After the settings changed (tests): derive the secret again at next use."""
    _secret.cache_clear()
