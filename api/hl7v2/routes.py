"""POST /hl7v2: HL7 v2 messages in ER7, one or a batch, answered with HL7 ACKs.

Each message is checked by the HL7 v2 contract the processor parses by (schemas.hl7v2.frame:
MSH and its separators, MSH-9, MSH-10, MSH-12, the character set, segment names) and
appended as one InboundMessage holding its exact bytes, keyed by sender and the PID-3
identifier the Patient id derives from (streams.keys); nothing is translated here. The HTTP status is
the worst of the per-message outcomes: 200 all AA, 400 some AR, 503 some AE (retry: MSH-10
is the idempotency key, so resending an already accepted message is harmless downstream).
A message asking for enhanced acknowledgement (MSH-15/16 valued) is answered CA / CR / CE
(api/hl7v2/ack.py); over HTTP every message is answered whatever its MSH-15 (NE, ER, SU
withhold ACKs over MLLP only), since a request always gets its response. The route runs the
preamble (api/preamble.py) and then each message through the HL7 v2 ingest sequence
(api/hl7v2/ingest_sequence.py) the MLLP listener runs too; what is its own is the batch
splitting and the HTTP answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from starlette.responses import Response
from starlette.routing import Route

from api.access import EVENT_ID_KEY
from api.errors import BadRequest, GatewayError
from api.gateway import request_id
from api.hl7v2.ack import AckCode, build_ack, error_of
from api.hl7v2.batch import Hl7Batch, split_batch, wrap_acks
from api.hl7v2.ingest_sequence import Answer, ingest, msh_or_none
from api.preamble import Admitted, Intake
from api.raw_headers import header_value
from api.security.scopes import Need
from schemas.events import Channel, Format, InboundMessage
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import MshHeader
from schemas.outcome import Issue
from streams.errors import DeliveryFailed
from streams.producer import Delivered

CONTENT_TYPES = ("x-application/hl7-v2+er7", "application/hl7-v2+er7", "application/hl7-v2",
                 "text/plain")  # fmt: skip
NEED = Need("hl7v2", "c")
_STATUS = {AckCode.accept: 200, AckCode.reject: 400, AckCode.error: 503}
_SEVERITY = {AckCode.accept: 0, AckCode.reject: 1, AckCode.error: 2}


class HttpDoor:
    """The HTTP side of the ingest sequence: the caller is the sender, its request the
    origin of every message of the batch; ACKs are ER7 text, one per message."""

    def __init__(self, call: Admitted, batch: Hl7Batch) -> None:
        self.call = call
        self.gw = call.gateway
        self.batch = batch
        scope = call.request.scope
        self.content_type = header_value(scope, b"content-type") or CONTENT_TYPES[0]
        self.path = scope["path"]  # request.url would parse the URL
        self.batched = batch.wrapped or len(batch.messages) > 1
        self.index = 0  # of the message being taken in

    def sender(self, header: MshHeader | None) -> str:
        return self.call.sender

    def frame_fault(self, exc: FormatError) -> str:
        return str(exc)

    def event(self, message: bytes, header: MshHeader, sender: str) -> InboundMessage:
        headers = {"http.path": self.path}
        if self.batched:
            headers["hl7.batch.index"] = str(self.index)
            if self.batch.batch_control_id:
                headers["hl7.batch.control_id"] = self.batch.batch_control_id
        return InboundMessage.received(
            message, channel=Channel.http, format=Format.hl7v2, content_type=self.content_type,
            sender=sender, idempotency_key=header.control_id,
            correlation_id=request_id(self.call.request), headers=headers,
        )  # fmt: skip

    def produce(
        self,
        event: InboundMessage,
        key: str,
        then: Callable[[Delivered | DeliveryFailed], None],
        owner: str | None,
    ) -> None:
        appended = self.gw.metrics.appended

        def confirmed(outcome: Delivered | DeliveryFailed) -> None:
            if not isinstance(outcome, DeliveryFailed):
                appended.labels(Format.hl7v2.value).inc()
            then(outcome)

        self.gw.ingestor.produce(event, key, self.gw.relay(confirmed), owner)

    def not_stored(self, event: InboundMessage, header: MshHeader, exc: Exception) -> str:
        return str(self.gw.not_confirmed(exc))

    async def keep_refused(
        self, message: bytes, issue: Issue, header: MshHeader | None, location: str
    ) -> str | None:
        kept = await self.call.refuse(BadRequest(issue), message, key=self.call.sender)
        return None if kept.stored_as_rejected else str(kept)

    answer = staticmethod(build_ack)  # every message is answered over HTTP


def _render_refusal(exc: GatewayError, body: bytes, answer_type: str) -> Response:
    """A request refused whole, before its messages are looked at: one ACK, answering the
    first message's MSH when there is one."""
    return _ack_response(_error_ack(exc, _header_or_none(body)), exc.status, answer_type,
                         exc.headers)  # fmt: skip


INTAKE = Intake(Format.hl7v2, CONTENT_TYPES, CONTENT_TYPES, needs=[NEED], render=_render_refusal)


@INTAKE.route
async def post_hl7v2(call: Admitted) -> Response:
    """Ingest HL7 v2 messages (ER7); answers with an ACK per message."""
    batch = split_batch(call.body)
    if not batch.messages:  # an envelope with nothing inside
        empty = BadRequest(Issue("the body holds no HL7 v2 message (no MSH segment)",
                                 code="structure", location="MSH"))  # fmt: skip
        refusal = await call.refuse(empty)
        ack = _error_ack(refusal, None)
        return _ack_response(ack, refusal.status, call.answer_type, refusal.headers)
    door = HttpDoor(call, batch)
    if len(batch.messages) == 1:  # the common case, without the cost of a task
        outcomes = [await _ingest(door, 0)]
    else:
        # Each message is queued as it is taken in, in order, so the log keeps the batch's
        # order for messages that share a key; then their answers are awaited together.
        outcomes = await asyncio.gather(*[_ingest(door, i) for i in range(len(batch.messages))])
    worst = max((o.code for o in outcomes), key=_SEVERITY.__getitem__)
    if len(outcomes) == 1 and outcomes[0].event_id:
        call.request.scope[EVENT_ID_KEY] = outcomes[0].event_id
    headers = door.gw.retry_after if worst is AckCode.error else {}
    reply = wrap_acks(batch, [o.ack for o in outcomes])
    return _ack_response(reply, _STATUS[worst], call.answer_type, headers)


def _ingest(door: HttpDoor, index: int) -> Awaitable[Answer[str]]:
    """Take message `index` in now (queued before this returns); await its answer."""
    door.index = index
    answered: asyncio.Future[Answer[str]] = asyncio.get_running_loop().create_future()
    refusal = ingest(door, door.batch.messages[index], partial(_settle, answered))
    return refusal if refusal is not None else answered


def _settle(answered: asyncio.Future[Answer[str]], answer: Answer[str]) -> None:
    if not answered.done():  # the request went away (client disconnected): nobody to tell
        answered.set_result(answer)


def _code_of(exc: GatewayError) -> AckCode:
    # AE: our side failed or asks for patience, resend later; AR: resending as is won't help.
    return AckCode.error if exc.status in (429, 503) else AckCode.reject


def _error_ack(exc: GatewayError, header: MshHeader | None) -> str:
    location = exc.issues[0].location or ""
    return build_ack(header, _code_of(exc), str(exc), error_of(location), location)


def _header_or_none(body: bytes) -> MshHeader | None:
    """The first message's MSH, for the ACK of a request refused as a whole."""
    messages = split_batch(body).messages if body else []
    return msh_or_none(messages[0]) if messages else None


def _ack_response(ack: str, status: int, media_type: str, headers: Mapping[str, str]) -> Response:
    # The ACK copies MSH fields read as latin-1, so encoding back as latin-1 returns the
    # sender's own bytes whatever its MSH-18.
    # No charset parameter: the bytes are in the sender's own character set (MSH-18).
    return Response(
        ack.encode("latin-1", "replace"), status, {**headers, "content-type": media_type}
    )


routes = [Route("/hl7v2", post_hl7v2, methods=["POST"])]
