"""Bearer JWT verification: RS256/ES256 through a JWKS URL or a PEM key, HS256 with a secret.

The algorithm is chosen by which key verifies it, never trusted from the token alone: an
HS256 token is only checked against the HS256 secret, an RS256/ES256 one only against the
public key or JWKS. Verified tokens are remembered until they expire, keyed by the token's
bytes as sent (signature included), so a busy sender costs one signature check and one
dictionary look-up per request, not a decode.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from api.errors import Unauthorized
from api.security.dev_token import dev_secret, dev_secret_file
from streams.settings import Settings

log = logging.getLogger("carelog.gateway.auth")

_CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    scopes: frozenset[str]
    patient: str | None = None  # SMART launch context: the token sees only this compartment


class TokenVerifier:
    def __init__(
        self,
        *,
        hs256_secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 30.0,
    ) -> None:
        if not (hs256_secret or public_key or jwks_url):
            raise ValueError("a token verifier needs a secret, a public key or a JWKS URL")
        self._secret = hs256_secret
        self._key: Any = None
        self._key_algs: frozenset[str] = frozenset()
        if public_key:
            self._key = load_pem_public_key(public_key.encode())
            if isinstance(self._key, rsa.RSAPublicKey):
                self._key_algs = frozenset({"RS256"})
            elif isinstance(self._key, ec.EllipticCurvePublicKey):
                self._key_algs = frozenset({"ES256"})
            else:
                raise ValueError("CARELOG_AUTH_PUBLIC_KEY must be an RSA or EC (P-256) key")
        self._jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300, timeout=5)
            if jwks_url
            else None
        )
        self._audience = audience
        self._issuer = issuer
        self._leeway = leeway
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    async def verify(self, token: bytes) -> Principal:
        """The principal of a valid token (its bytes as sent); raises Unauthorized with the
        reason otherwise."""
        hit = self._verified.get(token)
        if hit is not None and time.time() < hit[1]:
            return hit[0]
        try:
            claims = await self._decode(token.decode("ascii"))
        except UnicodeDecodeError:
            raise Unauthorized(
                "invalid bearer token: not ASCII", headers=challenge("invalid_token")
            ) from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(
                f"invalid bearer token: {exc}", headers=challenge("invalid_token")
            ) from None
        subject = claims.get("sub") or claims.get("client_id") or claims.get("azp")
        if not isinstance(subject, str) or not subject:
            raise Unauthorized(
                "the bearer token names no subject (sub)", headers=challenge("invalid_token")
            )
        patient = claims.get("patient")
        principal = Principal(
            subject, frozenset(_scopes(claims)), patient if isinstance(patient, str) else None
        )
        if len(self._verified) >= _CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (principal, float(claims["exp"]) + self._leeway)
        return principal

    async def _decode(self, token: str) -> dict[str, Any]:
        alg = jwt.get_unverified_header(token).get("alg")
        key: Any
        if alg == "HS256" and self._secret:
            key = self._secret
        elif alg in self._key_algs:
            key = self._key
        elif alg in ("RS256", "ES256") and self._jwks is not None:
            # Fetching the JWKS blocks; keys are cached, so this thread hop is rare per kid.
            key = (await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)).key
        else:
            raise jwt.InvalidAlgorithmError(f"tokens signed with {alg} are not accepted here")
        return jwt.decode(
            token, key, algorithms=[alg], audience=self._audience, issuer=self._issuer,
            leeway=self._leeway,
            options={"require": ["exp"], "verify_aud": self._audience is not None},
        )  # fmt: skip


def _scopes(claims: dict[str, Any]) -> list[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return raw.split()
    return [s for s in raw if isinstance(s, str)] if isinstance(raw, list) else []


def challenge(error: str | None = None, scope: str | None = None) -> dict[str, str]:
    """A WWW-Authenticate header (RFC 6750)."""
    params = ['realm="carelog"']
    if error:
        params.append(f'error="{error}"')
    if scope:
        params.append(f'scope="{scope}"')
    return {"WWW-Authenticate": "Bearer " + ", ".join(params)}


def verifier_from_settings(settings: Settings) -> TokenVerifier | None:
    """The verifier the settings call for; None only when CARELOG_AUTH_DISABLED=true."""
    if settings.auth.disabled:
        log.warning(
            "AUTHENTICATION IS DISABLED (CARELOG_AUTH_DISABLED=true): anyone who can reach "
            "the gateway can write to the log. Never run like this with real data."
        )
        return None
    public_key = settings.auth.public_key
    if public_key and not public_key.lstrip().startswith("-----BEGIN"):
        public_key = Path(public_key).read_text()
    secret = settings.auth.hs256_secret.get_secret_value() if settings.auth.hs256_secret else None
    if not (secret or public_key or settings.auth.jwks_url):
        if settings.environment == "production":
            raise ValueError("no token verification configured: set CARELOG_AUTH_JWKS_URL or "
                             "CARELOG_AUTH_PUBLIC_KEY (or CARELOG_AUTH_HS256_SECRET)")  # fmt: skip
        secret = dev_secret(settings)
        log.warning(
            "no CARELOG_AUTH_* key configured: accepting HS256 tokens signed with the "
            "development secret in %s (carelog token makes them)",
            dev_secret_file(settings),
        )
    return TokenVerifier(
        hs256_secret=secret, public_key=public_key, jwks_url=settings.auth.jwks_url,
        audience=settings.auth.audience, issuer=settings.auth.issuer,
    )  # fmt: skip
