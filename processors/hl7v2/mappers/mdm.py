"""MDM^T01-T11 -> DocumentReference (TXA, OBX TX/FT/ST text as a base64 text/plain attachment).

Per the IG's MDM message maps: the even triggers carry the document (OBX), the odd ones
(T01, T03, T05, T07, T09, T11) notify about it, so their attachment has no data. An addendum
(T05/T06) appends to, an edit (T07/T08) or a replacement (T09/T10) replaces, the parent
document TXA-13; a cancel (T11) makes the document entered-in-error.
"""

from __future__ import annotations

import base64

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Repetition
from .attachments import attachment
from .common import (
    JSON,
    Output,
    loc,
    patient_ref,
    practitioner_ref,
    ref,
    require,
)
from .observations import ENCAPSULATED_TYPES
from .orders import order_groups
from .requests import service_request
from .visit import visit_resources

TRIGGERS: frozenset[str] = frozenset({f"T{n:02d}" for n in range(1, 12)})
WITH_CONTENT = frozenset({"T02", "T04", "T06", "T08", "T10"})
# HL7 table 0191 document content presentation (TXA-3) -> the attachment's media type, for
# a notification that does not carry the text.
PRESENTATION = {"TX": "text/plain", "FT": "text/x-hl7-ft"}
# DocumentReference.relatesTo.code towards TXA-13 (parent document number), by trigger.
RELATES_TO = {
    "T05": "appends",
    "T06": "appends",
    "T07": "replaces",
    "T08": "replaces",
    "T09": "replaces",
    "T10": "replaces",
}
# HL7 table 0271 document completion status (TXA-17) -> DocumentReference.docStatus.
DOC_STATUS = {
    "AU": "final",
    "LA": "final",
    "DO": "preliminary",
    "IP": "preliminary",
    "IN": "preliminary",
    "DI": "preliminary",
    "PA": "preliminary",
}
# HL7 table 0275 document availability status (TXA-19) -> DocumentReference.status.
AVAILABILITY = {
    "AV": "current",
    "UN": "current",
    "OB": "superseded",
    "CA": "entered-in-error",
    "AR": "superseded",
    "PU": "current",
}


def _text_attachment(lines: list[str]) -> JSON:
    text = "\n".join(lines)
    return {
        "contentType": "text/plain",
        "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
    }


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    trigger = msg.message_type[1]
    if trigger not in TRIGGERS:
        raise MappingError("MSH-9", f"MDM^{trigger} is not supported")
    out = Output()
    txa = require(msg, "TXA")
    number = txa.field(12).rep(1)
    if not dt.c(number, 1):
        raise MappingError(loc(txa, 12, msg), "TXA-12 (unique document number) is required")
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = visit_resources(msg, patient_reference, ctx, out).encounter

    lines: list[str] = []
    encapsulated: list[JSON] = []  # OBX-2 ED / RP: the document itself (a PDF, an image)
    obx_code = None
    for obx in msg.segments("OBX"):
        vt = dt.c(obx.field(2).rep(1), 1).upper()
        if vt in ENCAPSULATED_TYPES:
            encapsulated.append(attachment(obx, msg))
        elif vt in ("TX", "FT", "ST"):
            lines.extend(r.value for r in obx.field(5).repetitions)
        else:
            raise MappingError(loc(obx, 2, msg), f"document text of type {vt!r} is not supported")
        obx_code = obx_code or dt.cwe(obx.field(3).rep(1), ctx)
    if not lines and not encapsulated and trigger in WITH_CONTENT:
        raise MappingError(
            "OBX-5", f"an MDM^{trigger} carries its document in OBX-5 (text, ED or RP)"
        )
    related = [
        r
        for r in (
            service_request(
                msg, order.orc, order.detail, order.notes, patient_reference,
                encounter_reference, ctx, out, default_status="unknown",
            )
            for order in order_groups(msg)[0]
        )
        if r
    ]  # fmt: skip

    doc_type = dt.cwe(txa.field(2).rep(1), ctx, "0270")
    if doc_type is not None and obx_code is not None:
        doc_type = {**doc_type, "coding": doc_type.get("coding", []) + obx_code.get("coding", [])}
    authors = [a for a in (practitioner_ref(r, msg, ctx, out) for r in dt.reps(txa.field(5))) if a]
    authenticator = None
    for rep in dt.reps(txa.field(22)):
        authenticator = practitioner_ref(rep, msg, ctx, out)
        break
    availability = dt.c(txa.field(19).rep(1), 1).upper()
    title = dt.c(txa.field(2).rep(1), 2)
    created = dt.c(txa.field(4).rep(1), 1)
    identifiers = []
    for field_no, kind in ((14, "PLAC"), (15, "FILL")):
        ident = dt.ei(txa.field(field_no).rep(1), ctx)
        if ident:
            ident["type"] = {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": kind}
                ]
            }
            identifiers.append(ident)
    created_at = dt.datetime_(txa.field(4).rep(1), ctx, loc(txa, 4, msg))
    attachments = ([_text_attachment(lines)] if lines else []) + encapsulated
    if not attachments:  # a notification (odd trigger): the document is described, not sent
        presentation = dt.c(txa.field(3).rep(1), 1).upper()
        # content is 1..*: with neither a presentation (TXA-3) nor a title the attachment
        # names the document number.
        named = title or (None if presentation in PRESENTATION else dt.c(number, 1))
        attachments = [{"contentType": PRESENTATION.get(presentation), "title": named}]
    document = {
        "resourceType": "DocumentReference",
        "id": ids.document_reference(f"{dt.c(number, 1)}|{dt.c(number, 2)}"),
        "masterIdentifier": dt.ei(number, ctx),
        "identifier": identifiers,
        "status": "entered-in-error"
        if trigger == "T11"
        else AVAILABILITY.get(availability, "current"),
        "docStatus": DOC_STATUS.get(dt.c(txa.field(17).rep(1), 1).upper()),
        "type": doc_type,
        "subject": ref(patient_reference),
        "date": dt.timestamp_instant(created, ctx, loc(txa, 4, msg)) if created else None,
        "author": authors,
        "authenticator": authenticator,
        "content": [
            {"attachment": {**a, "title": a.get("title", title), "creation": created_at}}
            for a in attachments
        ],
        "relatesTo": _relates_to(trigger, txa.field(13).rep(1)),
        "context": {
            "encounter": [ref(encounter_reference)] if encounter_reference else None,
            "related": [ref(r) for r in related],
        },
    }
    out.add(dt.prune(document))
    return out.resources()


def _relates_to(trigger: str, parent: Repetition) -> list[JSON] | None:
    """TXA-13 parent document number -> relatesTo (appends / replaces) for T05-T10."""
    code = RELATES_TO.get(trigger)
    if code is None or not dt.c(parent, 1):
        return None
    parent_id = ids.document_reference(f"{dt.c(parent, 1)}|{dt.c(parent, 2)}")
    return [{"code": code, "target": ref(f"DocumentReference/{parent_id}")}]
