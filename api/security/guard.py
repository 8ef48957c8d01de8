"""Who may do what: bearer token (401), per-client rate limit (429), SMART scopes (403).

The rate limit is keyed by the token's subject, or by the client's IP address while it has
no valid token, so that failed logins are limited too.
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.requests import Request

from api.errors import Forbidden, TooManyRequests, Unauthorized
from api.security.auth import Principal, TokenVerifier, challenge
from api.security.rate_limit import RateLimiter
from api.security.scopes import Need, missing

CLIENT_KEY = "carelog.client"  # ASGI scope key: who is calling, for the access log


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Guard:
    def __init__(self, verifier: TokenVerifier | None, limiter: RateLimiter) -> None:
        self.verifier = verifier
        self.limiter = limiter

    async def admit(self, request: Request) -> Principal:
        """The caller, authenticated and within its rate; raises 401 or 429."""
        if self.verifier is None:  # CARELOG_AUTH_DISABLED: the address is all we know
            principal = Principal(f"ip:{client_ip(request)}", frozenset())
        else:
            try:
                principal = await self.verifier.verify(_bearer(request))
            except Unauthorized:
                self._limit(request, f"ip:{client_ip(request)}")
                raise
        self._limit(request, principal.subject)
        return principal

    def require(self, principal: Principal, needs: Iterable[Need]) -> None:
        """Raises 403 unless the principal's scopes grant every need."""
        if self.verifier is None:
            return
        lacking = missing(principal.scopes, needs)
        if lacking:
            wanted = " ".join(sorted({str(n).split()[0] for n in lacking}))
            raise Forbidden(
                "insufficient scope: this request needs " + "; ".join(str(n) for n in lacking),
                headers=challenge("insufficient_scope", wanted),
            )

    def _limit(self, request: Request, client: str) -> None:
        request.scope[CLIENT_KEY] = client
        wait = self.limiter.take(client)
        if wait > 0:
            raise TooManyRequests(
                "rate limit exceeded; retry later",
                headers={"Retry-After": self.limiter.retry_after(wait)},
            )


def _bearer(request: Request) -> bytes:
    """The token of the Authorization header, as sent (read from the raw ASGI headers)."""
    header = b""
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            header = value
            break
    scheme, _, token = header.partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token:
        raise Unauthorized("a bearer token is required (Authorization: Bearer <JWT>)",
                           headers=challenge())  # fmt: skip
    return token
