"""POST /hl7v2: HL7 v2 messages in ER7, one or a batch, answered with HL7 ACKs.

Each message is checked by the HL7 v2 contract the processor parses by (schemas.hl7v2.frame:
MSH and its separators, MSH-9, MSH-10, MSH-12, the character set, segment names) and
appended as one InboundMessage holding its exact bytes, keyed by sender and the PID-3
identifier the Patient id derives from (streams.keys); nothing is translated here. The HTTP status is
the worst of the per-message outcomes: 200 all AA, 400 some AR, 503 some AE (retry: MSH-10
is the idempotency key, so resending an already accepted message is harmless downstream).
A message asking for enhanced acknowledgement (MSH-15/16 valued) is answered CA / CR / CE
(api/hl7v2/ack.py); over HTTP every message is answered whatever its MSH-15 (NE, ER, SU
withhold ACKs over MLLP only), since a request always gets its response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.access import EVENT_ID_KEY
from api.body import read_body
from api.errors import BadRequest, GatewayError
from api.gateway import Gateway, gateway_of, request_id
from api.hl7v2.ack import AckCode, build_ack, error_of
from api.hl7v2.batch import Hl7Batch, split_batch, wrap_acks
from api.negotiation import negotiate, require_content_type
from api.raw_headers import header_value
from api.security.scopes import Need
from schemas.events import Channel, Format, InboundMessage
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import MshHeader, read_er7, read_msh
from schemas.outcome import Issue
from streams.keys import hl7v2_key

CONTENT_TYPES = ("x-application/hl7-v2+er7", "application/hl7-v2+er7", "application/hl7-v2",
                 "text/plain")  # fmt: skip
NEED = Need("hl7v2", "c")
_STATUS = {AckCode.accept: 200, AckCode.reject: 400, AckCode.error: 503}
_SEVERITY = {AckCode.accept: 0, AckCode.reject: 1, AckCode.error: 2}


@dataclass(frozen=True, slots=True)
class Outcome:
    code: AckCode
    ack: str
    event_id: str | None = None


async def post_hl7v2(request: Request) -> Response:
    """Ingest HL7 v2 messages (ER7); answers with an ACK per message."""
    gw = gateway_of(request)
    answer_type = CONTENT_TYPES[0]
    body = b""
    try:
        principal = await gw.guard.admit(request)
        answer_type = negotiate(request, CONTENT_TYPES)
        gw.guard.require(principal, [NEED])
        body = await read_body(request, gw.settings.max_request_bytes)
        try:
            require_content_type(request, CONTENT_TYPES)
        except GatewayError as exc:
            raise await gw.refuse(exc, body, request, format=Format.hl7v2,
                                  sender=principal.subject) from None  # fmt: skip
    except GatewayError as exc:
        return _ack_response(
            _error_ack(exc, _header_or_none(body)), exc.status, answer_type, exc.headers
        )

    batch = split_batch(body)
    if not batch.messages:  # an envelope with nothing inside
        empty = BadRequest(Issue("the body holds no HL7 v2 message (no MSH segment)",
                                 code="structure", location="MSH"))  # fmt: skip
        refusal = await gw.refuse(
            empty, body, request, format=Format.hl7v2, sender=principal.subject
        )
        ack = _error_ack(refusal, None)
        return _ack_response(ack, refusal.status, answer_type, refusal.headers)
    if len(batch.messages) == 1:  # the common case, without the cost of a task
        outcomes = [await _ingest(gw, request, batch, 0, principal.subject)]
    else:
        # Tasks start in order and each queues its produce before its first await, so the
        # log keeps the batch's order for messages that share a key.
        outcomes = await asyncio.gather(
            *(_ingest(gw, request, batch, i, principal.subject) for i in range(len(batch.messages)))
        )
    worst = max((o.code for o in outcomes), key=_SEVERITY.__getitem__)
    if len(outcomes) == 1 and outcomes[0].event_id:
        request.scope[EVENT_ID_KEY] = outcomes[0].event_id
    headers = gw.retry_after if worst is AckCode.error else {}
    reply = wrap_acks(batch, [o.ack for o in outcomes])
    return _ack_response(reply, _STATUS[worst], answer_type, headers)


async def _ingest(
    gw: Gateway, request: Request, batch: Hl7Batch, index: int, sender: str
) -> Outcome:
    message = batch.messages[index]
    try:
        er7 = read_er7(message)
    except FormatError as err:
        issue = Issue(str(err), code="structure", location=err.location)
        refusal = await gw.refuse(BadRequest(issue), message, request, format=Format.hl7v2,
                                  sender=sender, key=sender)  # fmt: skip
        return Outcome(_code_of(refusal), _error_ack(refusal, _msh_or_none(message)))
    header = er7.header
    key = hl7v2_key(er7, sender)
    try:
        headers = {"http.path": request.scope["path"]}  # request.url would parse the URL
        if batch.wrapped or len(batch.messages) > 1:
            headers["hl7.batch.index"] = str(index)
            if batch.batch_control_id:
                headers["hl7.batch.control_id"] = batch.batch_control_id
        event = InboundMessage.received(
            message, channel=Channel.http, format=Format.hl7v2,
            content_type=header_value(request.scope, b"content-type") or CONTENT_TYPES[0],
            sender=sender,
            idempotency_key=header.control_id, correlation_id=request_id(request), headers=headers,
        )  # fmt: skip
        await gw.append(event, key)
    except GatewayError as exc:
        return Outcome(_code_of(exc), _error_ack(exc, header))
    return Outcome(AckCode.accept, build_ack(header, AckCode.accept), event.event_id)


def _code_of(exc: GatewayError) -> AckCode:
    # AE: our side failed or asks for patience, resend later; AR: resending as is won't help.
    return AckCode.error if exc.status in (429, 503) else AckCode.reject


def _error_ack(exc: GatewayError, header: MshHeader | None) -> str:
    location = exc.issues[0].location or ""
    return build_ack(header, _code_of(exc), str(exc), error_of(location), location)


def _msh_or_none(message: bytes) -> MshHeader | None:
    """A message's MSH, so that even its refusal's ACK echoes MSH-10."""
    try:
        return read_msh(message)
    except FormatError:
        return None


def _header_or_none(body: bytes) -> MshHeader | None:
    """The first message's MSH, for the ACK of a request refused as a whole."""
    messages = split_batch(body).messages if body else []
    return _msh_or_none(messages[0]) if messages else None


def _ack_response(ack: str, status: int, media_type: str, headers: Mapping[str, str]) -> Response:
    # The ACK copies MSH fields read as latin-1, so encoding back as latin-1 returns the
    # sender's own bytes whatever its MSH-18.
    # No charset parameter: the bytes are in the sender's own character set (MSH-18).
    return Response(
        ack.encode("latin-1", "replace"), status, {**headers, "content-type": media_type}
    )


routes = [Route("/hl7v2", post_hl7v2, methods=["POST"])]
