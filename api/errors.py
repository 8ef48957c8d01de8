"""The gateway's refusals, one class per HTTP answer, rendered at the edge.

Routes raise these; FHIR and JSON routes turn them into an OperationOutcome, the HL7 v2
route into an ACK (AR for the sender's fault, AE for ours). `stored_as_rejected` says whether
the input belongs on carelog.rejected: refusals of the content do, refusals of the caller
(401, 403, 405, 406, 413, 429) do not: their body was never read or trusted.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.requests import Request
from starlette.responses import Response

from schemas.outcome import Issue, operation_outcome

FHIR_JSON = "application/fhir+json"


class GatewayError(Exception):
    status = 400
    code = "invalid"  # FHIR issue-type of plain-text issues
    stored_as_rejected = True

    def __init__(self, *issues: Issue | str, headers: Mapping[str, str] | None = None) -> None:
        self.issues = [i if isinstance(i, Issue) else Issue(i, code=self.code) for i in issues]
        super().__init__(self.issues[0].diagnostics)
        self.headers = dict(headers or {})


class BadRequest(GatewayError):
    status = 400


class Unprocessable(GatewayError):
    status = 422


class UnsupportedMediaType(GatewayError):
    code = "not-supported"
    status = 415


class NotAcceptable(GatewayError):
    code = "not-supported"
    status = 406
    stored_as_rejected = False


class Unauthorized(GatewayError):
    code = "login"
    status = 401
    stored_as_rejected = False


class Forbidden(GatewayError):
    code = "forbidden"
    status = 403
    stored_as_rejected = False


class MethodNotAllowed(GatewayError):
    """The method cannot be used on this resource at all (e.g. updating an AuditEvent)."""

    code = "not-supported"
    status = 405
    stored_as_rejected = False


class PayloadTooLarge(GatewayError):
    code = "too-long"
    status = 413
    stored_as_rejected = False


class TooManyRequests(GatewayError):
    code = "throttled"
    status = 429
    stored_as_rejected = False


class Unavailable(GatewayError):
    """The log did not confirm: nothing was stored, the sender should retry later."""

    code = "transient"
    status = 503
    stored_as_rejected = False


def json_response(body: object, status: int, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, dict(headers or {}), media_type=FHIR_JSON)


def outcome_response(exc: GatewayError) -> Response:
    return json_response(operation_outcome(*exc.issues), exc.status, exc.headers)


async def gateway_error_handler(request: Request, exc: Exception) -> Response:
    """App-wide handler: an OperationOutcome (the HL7 route renders its own ACKs)."""
    assert isinstance(exc, GatewayError)
    return outcome_response(exc)
