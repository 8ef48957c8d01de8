"""DICOMweb STOW-RS: POST /dicomweb/studies[/{study}] with multipart/related DICOM instances.

Each part is frame-checked (preamble + DICM, header UIDs read with pydicom) and appended as
one InboundMessage (format dicom) holding the exact bytes, or, above
CARELOG_BLOB_THRESHOLD_BYTES, a content-addressed reference to them in the blob store. Parts
that are not usable DICOM go to carelog.rejected with the reason. The answer is the STOW-RS
DICOM JSON: 200 all stored, 202 some failed, 409 none stored; 503 + Retry-After when Kafka
did not confirm (SOP Instance UID is the idempotency key, so a retry is harmless).

Splitting, header parsing, hashing and blob writes run in worker threads, a chunk of parts
at a time, and Gateway.append_all queues the events from a worker thread too: a request of
thousands of instances never holds the loop that serves every other route. A request of
more than CARELOG_DICOM_MAX_PARTS parts is refused whole (413) and kept on
carelog.rejected.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.access import EVENT_ID_KEY
from api.dicomweb.header import DicomHeader, DicomHeaderError, read_dicom_header
from api.dicomweb.multipart_related import (
    MultipartError,
    Part,
    TooManyParts,
    parse_media_type,
    split_parts,
)
from api.dicomweb.stow_response import (
    CANNOT_UNDERSTAND,
    DOES_NOT_MATCH,
    Outcome,
    stow_body,
    stow_status,
)
from api.errors import (
    BadRequest,
    GatewayError,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMediaType,
)
from api.gateway import Gateway, request_id
from api.preamble import Admitted, Intake
from api.security.scopes import Need
from schemas.events import Channel, Format, InboundMessage, new_event_id, utc_now
from schemas.outcome import Issue
from streams.blobstore import BlobStore, BlobStoreError, blob_store_from_settings
from streams.settings import Settings

DICOM = "application/dicom"
ANSWER_TYPES = ("application/dicom+json", "application/json")
NEED = Need("dicom", "c")
PARSE_CHUNK = 64  # parts read per worker-thread call (the loop serves others in between)
KEPT_HEAD_BYTES = 65_536  # of refused input above the blob threshold, what the event holds


class TooManyInstances(PayloadTooLarge):
    """More parts than CARELOG_DICOM_MAX_PARTS. Unlike a body over the size limit, it was
    read: it is kept on carelog.rejected."""

    stored_as_rejected = True


@dataclass(frozen=True, slots=True)
class Failure:
    part: Part
    reason: str
    code: int
    header: DicomHeader | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """What the events of one request share (plain values: read in worker threads)."""

    path: str
    sender: str
    correlation_id: str | None
    study: str | None  # the study posted to, if any
    blob_threshold_bytes: int
    blobs: BlobStore


@dataclass(frozen=True, slots=True)
class Read:
    """One part, checked; its event when it is good."""

    checked: DicomHeader | Failure
    event: InboundMessage | None


def dicom_key(sender: str, header: DicomHeader) -> str:
    """`sender|PatientID[^Issuer]`: one patient's instances from one sender keep their order."""
    if not header.patient_id:
        return sender
    issuer = f"^{header.issuer_of_patient_id}" if header.issuer_of_patient_id else ""
    return f"{sender}|{header.patient_id}{issuer}"


def blob_store_of(request: Request, gw: Gateway) -> BlobStore:
    """The app's blob store (request.app.state.blob_store), made from settings on first use."""
    store: BlobStore | None = getattr(request.app.state, "blob_store", None)
    if store is None:
        store = blob_store_from_settings(gw.settings)
        request.app.state.blob_store = store
    return store


def _parts(content_type: str, body: bytes, max_parts: int) -> list[Part]:
    media = parse_media_type(content_type)
    if media.type != "multipart/related":
        raise UnsupportedMediaType(
            f"Content-Type {media.type or 'none'} is not accepted here; send "
            'multipart/related; type="application/dicom"; boundary=...'
        )
    declared = media.params.get("type", DICOM).lower()
    if declared != DICOM:
        raise UnsupportedMediaType(
            f'multipart/related; type="{declared}" is not supported: only '
            'type="application/dicom" (DICOM Part 10 instances)'
        )
    try:
        parts = split_parts(body, media.params.get("boundary", ""), max_parts)
    except TooManyParts:
        raise TooManyInstances(
            f"a STOW-RS request takes at most {max_parts} parts (CARELOG_DICOM_MAX_PARTS); "
            "send the instances in several requests"
        ) from None
    except MultipartError as exc:
        raise BadRequest(f"malformed multipart/related body: {exc}") from None
    if not parts:
        raise BadRequest("the multipart/related body holds no parts")
    return parts


def _check(part: Part, study: str | None) -> DicomHeader | Failure:
    declared = part.content_type
    if declared is not None and declared != DICOM:
        return Failure(part, f"part Content-Type {declared} is not {DICOM}", CANNOT_UNDERSTAND)
    try:
        header = read_dicom_header(part.content)
    except DicomHeaderError as exc:
        return Failure(part, str(exc), CANNOT_UNDERSTAND)
    if study is not None and header.study_instance_uid != study:
        reason = (
            f"Study Instance UID {header.study_instance_uid} is not the study {study} posted to"
        )
        return Failure(part, reason, DOES_NOT_MATCH, header)
    return header


def _event(origin: Origin, part: Part, header: DicomHeader) -> InboundMessage:
    """The part's InboundMessage: inline, or above the threshold by reference to the blob
    store (raises BlobStoreError). Runs in a worker thread: it hashes and may write."""
    data = part.content
    headers = {
        "http.path": origin.path,
        "dicom.study_instance_uid": header.study_instance_uid,
        "dicom.series_instance_uid": header.series_instance_uid,
        "dicom.sop_class_uid": header.sop_class_uid,
        "dicom.transfer_syntax_uid": header.transfer_syntax_uid,
    }
    common = dict(
        channel=Channel.http,
        format=Format.dicom,
        content_type=DICOM,
        sender=origin.sender,
        idempotency_key=header.sop_instance_uid,
        correlation_id=origin.correlation_id,
    )
    if len(data) <= origin.blob_threshold_bytes:
        return InboundMessage.received(data, headers=headers, **common)  # type: ignore[arg-type]
    blob = origin.blobs.put(data)
    return InboundMessage(
        event_id=new_event_id(),
        received_at=utc_now(),
        payload=None,
        payload_ref=blob.uri,
        payload_size=blob.size,
        sha256=blob.sha256,
        headers=headers,
        **common,  # type: ignore[arg-type]
    )


def _read(origin: Origin, parts: list[Part]) -> list[Read]:
    """Check each part and make the events of the good ones (in a worker thread)."""
    out = []
    for part in parts:
        checked = _check(part, origin.study)
        event = _event(origin, part, checked) if isinstance(checked, DicomHeader) else None
        out.append(Read(checked, event))
    return out


async def _read_all(gw: Gateway, origin: Origin, parts: list[Part]) -> list[Read]:
    """`_read` off the event loop, PARSE_CHUNK parts per worker-thread call."""
    out: list[Read] = []
    for start in range(0, len(parts), PARSE_CHUNK):
        try:
            out += await asyncio.to_thread(_read, origin, parts[start : start + PARSE_CHUNK])
        except BlobStoreError as exc:
            raise Unavailable(
                f"not stored: the blob store failed ({exc}); retry later", headers=gw.retry_after
            ) from None
    return out


async def _keep_refused(call: Admitted, error: GatewayError, data: bytes) -> GatewayError:
    """Keep refused input (a part, or the whole request) on carelog.rejected; returns the
    error to answer with, 503 if it could not be kept. Input bigger than the blob threshold
    goes to the blob store, and the event holds its first KEPT_HEAD_BYTES."""
    if not error.stored_as_rejected:
        return error
    gw = call.gateway
    record, original = error, data
    if len(data) > gw.settings.blobs.threshold_bytes:
        try:
            blob = await asyncio.to_thread(blob_store_of(call.request, gw).put, data)
        except BlobStoreError as exc:
            return Unavailable(
                f"refused ({error}) and not recorded ({exc}); retry later", headers=gw.retry_after
            )
        original = data[:KEPT_HEAD_BYTES]
        kept_at = Issue(
            f"original of {blob.size} bytes (sha256 {blob.sha256}) kept at {blob.uri}; the "
            f"event holds its first {KEPT_HEAD_BYTES // 1024} KiB",
            code="informational",
            severity="information",
        )
        record = type(error)(*error.issues, kept_at)
    kept = await call.refuse(record, original)
    return kept if isinstance(kept, Unavailable) else error


def _dicom_body_limit(settings: Settings) -> int:
    return settings.dicom.max_request_bytes


# The media type is read by _parts: multipart/related with its type and boundary parameters.
INTAKE = Intake(Format.dicom, ANSWER_TYPES, None, needs=[NEED], body_limit=_dicom_body_limit)


@INTAKE.route
async def post_studies(call: Admitted) -> Response:
    """Store DICOM instances (STOW-RS)."""
    request, gw, body, sender = call.request, call.gateway, call.body, call.sender
    content_type = request.headers.get("content-type", "")
    try:  # off the loop: a body of 256 MB takes a while to split
        parts = await asyncio.to_thread(_parts, content_type, body, gw.settings.dicom.max_parts)
    except GatewayError as exc:
        raise await _keep_refused(call, exc, body) from None

    origin = Origin(request.url.path, sender, request_id(request),
                    request.path_params.get("study"), gw.settings.blobs.threshold_bytes,
                    blob_store_of(request, gw))  # fmt: skip
    read = await _read_all(gw, origin, parts)
    events = [(r.event, dicom_key(sender, r.checked), r.checked.patient) for r in read
              if r.event is not None and isinstance(r.checked, DicomHeader)]  # fmt: skip
    await gw.append_all(events)
    for failure in (r.checked for r in read if isinstance(r.checked, Failure)):
        error = GatewayError(Issue(failure.reason, code="invalid"))
        outcome = await _keep_refused(call, error, failure.part.content)
        if isinstance(outcome, Unavailable):
            raise outcome

    outcomes = [
        Outcome(c.sop_class_uid, c.sop_instance_uid)
        if isinstance(c, DicomHeader)
        else Outcome(
            c.header.sop_class_uid if c.header else "",
            c.header.sop_instance_uid if c.header else "",
            c.code,
        )
        for c in (r.checked for r in read)
    ]
    if events:
        request.scope[EVENT_ID_KEY] = events[0][0].event_id
    headers = {"X-Event-Ids": ",".join(e.event_id for e, _, _ in events)} if events else {}
    return Response(
        orjson.dumps(stow_body(outcomes)),
        stow_status(outcomes),
        headers,
        media_type=call.answer_type,
    )


routes = [
    Route("/dicomweb/studies", post_studies, methods=["POST"]),
    Route("/dicomweb/studies/{study}", post_studies, methods=["POST"]),
]

_STOW_ANSWER = {
    t: {"schema": {"type": "object", "description": "DICOM JSON: 00081199 ReferencedSOPSequence, "
                   "00081198 FailedSOPSequence with 00081197 FailureReason"}}
    for t in ANSWER_TYPES
}  # fmt: skip


def _operation(operation_id: str, parameters: list[dict[str, object]]) -> dict[str, object]:
    from api.openapi import REQUEST_HEADERS, _refusals  # the gateway's shared OpenAPI pieces

    return {
        "summary": "Store DICOM instances (DICOMweb STOW-RS)",
        "description": 'Body: multipart/related; type="application/dicom", one DICOM Part 10 '
        "instance per part. Each is frame-checked and appended as one InboundMessage (format "
        "dicom); big ones go to the blob store by reference. At most CARELOG_DICOM_MAX_PARTS "
        "parts (1000 by default): more are refused whole with 413 and kept on "
        "carelog.rejected. Scope: `system/dicom.write`.",
        "operationId": operation_id,
        "security": [{"bearerAuth": ["system/dicom.write"]}],
        "parameters": [*REQUEST_HEADERS, *parameters],
        "requestBody": {"required": True, "content": {"multipart/related": {"schema": {
            "type": "object", "properties": {"instance": {"type": "string", "format": "binary"}},
        }}}},
        "responses": {
            "200": {"description": "Every instance is on the log.", "content": _STOW_ANSWER},
            "202": {"description": "Some instances failed (FailedSOPSequence); the failed parts "
                    "are kept on carelog.rejected.", "content": _STOW_ANSWER},
            "409": {"description": "No instance could be stored; the failed parts are kept on "
                    "carelog.rejected.", "content": _STOW_ANSWER},
            **_refusals(400, 401, 403, 406, 413, 415, 429, 503),
        },
    }  # fmt: skip


STUDY_PARAM = {"name": "study", "in": "path", "required": True, "schema": {"type": "string"}}


def openapi_paths() -> dict[str, object]:
    """The OpenAPI operations of these routes, for openapi_document(extra_paths=...)."""
    return {
        "/dicomweb/studies": {"post": _operation("stowStudies", [])},
        "/dicomweb/studies/{study}": {"post": _operation("stowStudy", [STUDY_PARAM])},
    }
