"""POST /devices/readings: a batch of device readings, checked by the contract the processor
reads it by (schemas.device_batch), appended as one event."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from api.access import EVENT_ID_KEY
from api.errors import BadRequest, GatewayError, Unprocessable, json_response
from api.gateway import request_id
from api.preamble import Admitted, Intake
from api.security.scopes import Need
from processors.device_readings import device_patient_id
from schemas.device_batch import BatchRefused, DeviceBatch, read_batch
from schemas.events import Channel, Format, InboundMessage
from streams.keys import inbound_key

CONTENT_TYPES = ("application/json",)
ANSWER_TYPES = ("application/json", "application/fhir+json")
NEED = Need("device", "c")
INTAKE = Intake(Format.device, ANSWER_TYPES, CONTENT_TYPES, needs=[NEED])


@INTAKE.route
async def post_readings(call: Admitted) -> Response:
    """Ingest a batch of device readings (JSON)."""
    request, body = call.request, call.body
    try:
        batch = validate_batch(body)
    except GatewayError as exc:
        raise await call.refuse(exc) from None

    event = InboundMessage.received(
        body, channel=Channel.http, format=Format.device,
        content_type=request.headers.get("content-type", CONTENT_TYPES[0]),
        sender=call.sender, idempotency_key=request.headers.get("idempotency-key"),
        correlation_id=request_id(request),
        headers={"http.path": request.url.path, "device.id": batch.device.id,
                 "readings": str(len(batch.readings))},
    )  # fmt: skip
    key = inbound_key(Format.device, body, call.sender)
    delivered = await call.gateway.append(event, key, device_patient_id(batch.patient))
    request.scope[EVENT_ID_KEY] = event.event_id
    answer = {"status": "accepted", "eventId": event.event_id, "topic": delivered.topic,
              "readings": len(batch.readings)}  # fmt: skip
    response = json_response(answer, 202, {"X-Event-Id": event.event_id})
    response.headers["content-type"] = call.answer_type
    return response


def validate_batch(body: bytes) -> DeviceBatch:
    """The batch, or 422 with one issue per field at fault (400 when not JSON at all)."""
    try:
        return read_batch(body)
    except BatchRefused as exc:
        raise (BadRequest if exc.not_json else Unprocessable)(*exc.issues) from None


routes = [Route("/devices/readings", post_readings, methods=["POST"])]
