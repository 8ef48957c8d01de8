"""The preamble every ingesting route runs before it looks at what was sent.

admit (token 401, rate 429) -> negotiate (Accept 406) -> scope (403) -> read the body under
the size limit (413) -> check its Content-Type (415, kept on carelog.rejected). A route
states what it takes in one `Intake`, decorates its handler with `intake.route`, and the
handler gets an `Admitted` request: who calls, the answer type, the body, and `refuse` to
keep refused content on the log. A refusal on the way is answered by the intake's renderer
(an OperationOutcome unless the route gives its own: the HL7 v2 route answers an ACK, in the
answer type negotiated so far).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response

from api.body import read_body
from api.errors import GatewayError, outcome_response
from api.gateway import Gateway, gateway_of
from api.negotiation import negotiate, require_content_type
from api.security.auth import Principal
from api.security.scopes import Need
from schemas.events import Format
from streams.settings import Settings

# A refusal in the preamble as the route answers it: (error, body read so far, answer type).
Renderer = Callable[[GatewayError, bytes, str], Response]
Handler = Callable[["Admitted"], Awaitable[Response]]
# Methods whose requests carry no body: nothing to read nor to check the type of.
_BODILESS = frozenset({"GET", "HEAD", "DELETE"})


def outcome_refusal(exc: GatewayError, body: bytes, answer_type: str) -> Response:
    """The default renderer: a FHIR OperationOutcome, as the app-wide handler answers."""
    return outcome_response(exc)


def general_body_limit(settings: Settings) -> int:
    return settings.gateway.max_request_bytes


@dataclass(frozen=True, slots=True)
class Intake:
    """What a route takes in.

    `content_types` None: the route reads the media type itself (DICOM's multipart/related
    parameters); `needs` is a fixed list or the needs of a request (empty: the route checks
    them once it has read the body).
    """

    format: Format
    answer_types: tuple[str, ...]
    content_types: tuple[str, ...] | None
    needs: Sequence[Need] | Callable[[Request], Sequence[Need]] = ()
    body_limit: Callable[[Settings], int] = general_body_limit
    render: Renderer = field(default=outcome_refusal)

    def route(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The Starlette endpoint: the preamble, then `handler` with the admitted request."""

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            admitted = await admit(request, self)
            if isinstance(admitted, Response):
                return admitted
            return await handler(admitted)

        return endpoint


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request past the preamble."""

    request: Request
    gateway: Gateway
    intake: Intake
    principal: Principal
    answer_type: str
    body: bytes

    @property
    def sender(self) -> str:
        return self.principal.subject

    async def refuse(
        self, exc: GatewayError, original: bytes | None = None, *, key: str | None = None
    ) -> GatewayError:
        """Keep refused content (the body unless `original`) on carelog.rejected; returns
        the error to answer with (503 if even the refusal could not be stored)."""
        return await self.gateway.refuse(
            exc, self.body if original is None else original, self.request,
            format=self.intake.format, sender=self.sender, key=key,
        )  # fmt: skip


async def admit(request: Request, intake: Intake) -> Admitted | Response:
    """The request admitted, or the response refusing it (rendered by the intake)."""
    gw = gateway_of(request)
    answer_type = intake.answer_types[0]
    body = b""
    try:
        principal = await gw.guard.admit(request)
        answer_type = negotiate(request, intake.answer_types)
        needs = intake.needs(request) if callable(intake.needs) else intake.needs
        if needs:
            gw.guard.require(principal, needs)
        if request.method not in _BODILESS:
            body = await read_body(request, intake.body_limit(gw.settings))
            if intake.content_types is not None:
                try:
                    require_content_type(request, intake.content_types)
                except GatewayError as exc:
                    raise await gw.refuse(exc, body, request, format=intake.format,
                                          sender=principal.subject) from None  # fmt: skip
    except GatewayError as exc:
        return intake.render(exc, body, answer_type)
    return Admitted(request, gw, intake, principal, answer_type, body)
