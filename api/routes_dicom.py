"""DICOMweb STOW-RS: POST /dicomweb/studies[/{study}] with multipart/related DICOM instances.

Each part is frame-checked (preamble + DICM, header UIDs read with pydicom) and appended as
one InboundMessage (format dicom) holding the exact bytes, or, above
CARELOG_BLOB_THRESHOLD_BYTES, a content-addressed reference to them in the blob store. Parts
that are not usable DICOM go to carelog.rejected with the reason. The answer is the STOW-RS
DICOM JSON: 200 all stored, 202 some failed, 409 none stored; 503 + Retry-After when Kafka
did not confirm (SOP Instance UID is the idempotency key, so a retry is harmless).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.access import EVENT_ID_KEY
from api.blobstore import BlobStore, BlobStoreError, blob_store_from_settings
from api.body import read_body
from api.dicom_header import DicomHeader, DicomHeaderError, read_dicom_header
from api.errors import BadRequest, GatewayError, Unavailable, UnsupportedMediaType
from api.gateway import Gateway, gateway_of, request_id
from api.multipart_related import MultipartError, Part, parse_media_type, split_parts
from api.negotiation import negotiate
from api.scopes import Need
from api.stow_response import (
    CANNOT_UNDERSTAND,
    DOES_NOT_MATCH,
    Outcome,
    stow_body,
    stow_status,
)
from schemas.events import Channel, Format, InboundMessage, new_event_id, utc_now
from schemas.outcome import Issue

DICOM = "application/dicom"
ANSWER_TYPES = ("application/dicom+json", "application/json")
NEED = Need("dicom", "c")


@dataclass(frozen=True, slots=True)
class Failure:
    part: Part
    reason: str
    code: int
    header: DicomHeader | None = None


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


def _parts(request: Request, body: bytes) -> list[Part]:
    content_type = request.headers.get("content-type", "")
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
        parts = split_parts(body, media.params.get("boundary", ""))
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


async def _event(
    request: Request, gw: Gateway, part: Part, header: DicomHeader, sender: str
) -> InboundMessage:
    data = part.content
    headers = {
        "http.path": request.url.path,
        "dicom.study_instance_uid": header.study_instance_uid,
        "dicom.series_instance_uid": header.series_instance_uid,
        "dicom.sop_class_uid": header.sop_class_uid,
        "dicom.transfer_syntax_uid": header.transfer_syntax_uid,
    }
    common = dict(
        channel=Channel.http,
        format=Format.dicom,
        content_type=DICOM,
        sender=sender,
        idempotency_key=header.sop_instance_uid,
        correlation_id=request_id(request),
    )
    if len(data) <= gw.settings.blob_threshold_bytes:
        return InboundMessage.received(data, headers=headers, **common)  # type: ignore[arg-type]
    try:
        blob = await asyncio.to_thread(blob_store_of(request, gw).put, data)
    except BlobStoreError as exc:
        raise Unavailable(
            f"not stored: the blob store failed ({exc}); retry later", headers=gw.retry_after
        ) from None
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


async def _refuse(request: Request, gw: Gateway, failure: Failure, sender: str) -> None:
    """Keep a failed part on carelog.rejected (big ones: the head, the whole in the blob store)."""
    data = failure.part.content
    error = GatewayError(Issue(failure.reason, code="invalid"))
    original = data
    if len(data) > gw.settings.blob_threshold_bytes:
        try:
            blob = await asyncio.to_thread(blob_store_of(request, gw).put, data)
        except BlobStoreError as exc:
            raise Unavailable(
                f"refused ({failure.reason}) and not recorded ({exc}); retry later",
                headers=gw.retry_after,
            ) from None
        original = data[:65_536]
        error.issues.append(
            Issue(
                f"original of {blob.size} bytes (sha256 {blob.sha256}) kept "
                f"at {blob.uri}; the event holds its first 64 KiB",
                code="informational",
                severity="information",
            )
        )
    outcome = await gw.refuse(error, original, request, format=Format.dicom, sender=sender)
    if isinstance(outcome, Unavailable):
        raise outcome


async def post_studies(request: Request) -> Response:
    """Store DICOM instances (STOW-RS)."""
    gw = gateway_of(request)
    principal = await gw.guard.admit(request)
    answer_type = negotiate(request, ANSWER_TYPES)
    gw.guard.require(principal, [NEED])
    body = await read_body(request, gw.settings.dicom_max_request_bytes)
    sender = principal.subject
    try:
        parts = _parts(request, body)
    except GatewayError as exc:
        raise await gw.refuse(exc, body, request, format=Format.dicom, sender=sender) from None

    study = request.path_params.get("study")
    checked = [_check(part, study) for part in parts]
    accepted = [(p, c) for p, c in zip(parts, checked, strict=True) if isinstance(c, DicomHeader)]
    events = [await _event(request, gw, part, header, sender) for part, header in accepted]
    appended = await asyncio.gather(
        *(gw.append(e, dicom_key(sender, h)) for e, (_, h) in zip(events, accepted, strict=True)),
        return_exceptions=True,
    )
    failed = next((r for r in appended if isinstance(r, BaseException)), None)
    if failed is not None:
        raise failed  # 503 Unavailable: not every instance is on the log; resend them all
    for failure in (c for c in checked if isinstance(c, Failure)):
        await _refuse(request, gw, failure, sender)

    outcomes = [
        Outcome(c.sop_class_uid, c.sop_instance_uid)
        if isinstance(c, DicomHeader)
        else Outcome(
            c.header.sop_class_uid if c.header else "",
            c.header.sop_instance_uid if c.header else "",
            c.code,
        )
        for c in checked
    ]
    if events:
        request.scope[EVENT_ID_KEY] = events[0].event_id
    headers = {"X-Event-Ids": ",".join(e.event_id for e in events)} if events else {}
    return Response(
        orjson.dumps(stow_body(outcomes)), stow_status(outcomes), headers, media_type=answer_type
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
        "dicom); big ones go to the blob store by reference. Scope: `system/dicom.write`.",
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
