"""OBX-2 ED (encapsulated data) / RP (reference pointer) -> FHIR Attachment and DocumentReference.

A PDF, an image or an HTML report sent inside OBX-5 is a document: it becomes
DocumentReference.content.attachment with the contentType that ED-2/ED-3 (RP-3/RP-4) name and
the bytes base64-encoded in `data` (RP: the pointer in `url`). The bytes stay inline: the
message that carried them is itself kept whole (in the blob store when it is large).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Repetition, Segment
from .common import JSON, Output, loc, ref, required_code

# (HL7 table 0191 type of data, table 0291 subtype) -> MIME type; the subtype alone decides
# when it is specific, a sender's MIME type ("application/pdf") in the subtype is taken as is.
_SUBTYPES = {
    "PDF": "application/pdf",
    "JPEG": "image/jpeg",
    "JPG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "RTF": "text/rtf",
    "HTML": "text/html",
    "XML": "application/xml",
    "SGML": "text/sgml",
    "DICOM": "application/dicom",
    "POSTSCRIPT": "application/postscript",
    "MSWORD": "application/msword",
    "OCTET-STREAM": "application/octet-stream",
    "BASIC": "audio/basic",
}
_TYPES = {"TEXT": "text/plain", "HTML": "text/html", "IM": "image", "AU": "audio"}


def content_type(type_of_data: str, subtype: str) -> str:
    sub = subtype.strip()
    if "/" in sub:
        return sub.lower()
    known = _SUBTYPES.get(sub.upper())
    if known:
        return known
    kind = _TYPES.get(type_of_data.upper())
    if kind and "/" in kind:
        return kind
    return "application/octet-stream"


def _decode(encoding: str, data: str, location: str) -> bytes:
    kind = encoding.upper()
    try:
        if kind == "BASE64":
            return base64.b64decode("".join(data.split()), validate=True)
        if kind == "HEX":
            return bytes.fromhex("".join(data.split()))
    except (binascii.Error, ValueError) as exc:
        raise MappingError(location, f"ED-5 is not valid {encoding} data: {exc}") from None
    if kind in ("A", ""):
        return data.encode("utf-8")
    raise MappingError(
        location, f"ED-4 encoding {encoding!r} is not in table 0299 (A, Hex, Base64)"
    )


def attachment(obx: Segment, msg: ParsedMessage) -> JSON:
    """OBX-5 (ED or RP) -> Attachment. Data that does not decode refuses the message: it is
    the document itself, not an optional detail."""
    where = loc(obx, 5, msg)
    rep: Repetition = obx.field(5).rep(1)
    if dt.c(obx.field(2).rep(1), 1).upper() == "RP":
        pointer = dt.c(rep, 1)
        if not pointer:
            raise MappingError(where, "RP-1 (pointer) is required for a reference pointer")
        return dt.prune({"contentType": content_type(dt.c(rep, 3), dt.c(rep, 4)), "url": pointer})
    data = rep.c(5).strip()
    if not data:
        raise MappingError(where, "ED-5 (data) is required for encapsulated data")
    raw = _decode(dt.c(rep, 4), data, where)
    return {
        "contentType": content_type(dt.c(rep, 2), dt.c(rep, 3)),
        "data": base64.b64encode(raw).decode("ascii"),
        "size": len(raw),
    }


def document_reference(
    msg: ParsedMessage,
    obx: Segment,
    group_key: str,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
    related: Sequence[str] = (),
) -> str:
    """An ED/RP OBX -> DocumentReference (id from its group, OBX-1 and OBX-3); `related` are
    the order and report it belongs to (R4 DocumentReference has no basedOn)."""
    code = required_code(obx, 3, "observation identifier", msg, ctx)
    first = code.get("coding", [{}])[0]
    key = f"{group_key}|{obx.field(1).value.strip()}|{first.get('code', code.get('text', ''))}"
    observed = dt.timestamp_instant(dt.c(obx.field(14).rep(1), 1), ctx, loc(obx, 14, msg))
    context: JSON = {
        "encounter": [ref(encounter_reference)] if encounter_reference else None,
        "related": [ref(r) for r in related],
    }
    document = {
        "resourceType": "DocumentReference",
        "id": ids.document_reference(key),
        "status": "current",
        "docStatus": "final" if dt.c(obx.field(11).rep(1), 1).upper() in ("F", "C") else None,
        "type": code,
        "subject": ref(patient_reference),
        "date": observed,
        "content": [{"attachment": attachment(obx, msg)}],
        "context": context,
    }
    return out.add(dt.prune(document))
