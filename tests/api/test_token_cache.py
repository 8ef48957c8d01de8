"""Verified bearer tokens are remembered by their bytes until they expire: a busy sender
costs one signature check, and no other bytes ever get its answer."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import jwt
import pytest

from api.errors import Unauthorized
from api.security.auth import TokenVerifier
from api.security.dev_token import mint_token

SECRET = "cache-secret-" + "c" * 40


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token jwt.decode was asked to check (i.e. a signature verified, not cached)."""
    seen: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return seen


def test_the_header_bytes_are_verified_once_then_served_from_the_cache(
    decodes: list[str],
) -> None:
    verifier = TokenVerifier(hs256_secret=SECRET)
    token = mint_token(SECRET, "system/hl7v2.write", "lab-1", ttl=300).encode()

    async def twice() -> list[str]:
        return [(await verifier.verify(token)).subject for _ in range(2)]

    assert asyncio.run(twice()) == ["lab-1", "lab-1"]
    assert decodes == [token.decode()]


def test_other_bytes_are_checked_on_their_own_and_refused(decodes: list[str]) -> None:
    verifier = TokenVerifier(hs256_secret=SECRET)
    token = mint_token(SECRET, "system/hl7v2.write", "lab-1", ttl=300).encode()
    forged = token[:-2] + (b"AA" if not token.endswith(b"AA") else b"BB")
    asyncio.run(verifier.verify(token))
    with pytest.raises(Unauthorized):
        asyncio.run(verifier.verify(forged))
    with pytest.raises(Unauthorized):
        asyncio.run(verifier.verify(b"\xff\xfe not a token"))
    assert decodes[:2] == [token.decode(), forged.decode()]


def test_an_expired_token_is_not_served_from_the_cache() -> None:
    verifier = TokenVerifier(hs256_secret=SECRET, leeway=0)
    token = mint_token(SECRET, "system/hl7v2.write", "lab-1", ttl=1).encode()
    asyncio.run(verifier.verify(token))
    time.sleep(2.1)
    with pytest.raises(Unauthorized, match="expired"):
        asyncio.run(verifier.verify(token))
