"""MDM^T02 -> DocumentReference (TXA, OBX TX/FT/ST text as a base64 text/plain attachment)."""

from __future__ import annotations

import base64

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage
from .attachments import attachment
from .common import (
    JSON,
    Output,
    encounter_ref_if_known,
    loc,
    patient_ref,
    practitioner_ref,
    ref,
    require,
)
from .observations import ENCAPSULATED_TYPES
from .orders import order_groups
from .requests import service_request

TRIGGERS = frozenset({"T02"})
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
        raise MappingError(loc(txa, 12), "TXA-12 (unique document number) is required")
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = encounter_ref_if_known(msg, patient_reference, ctx)

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
    if not lines and not encapsulated:
        raise MappingError("OBX-5", "an MDM carries its document in OBX-5 (text, ED or RP)")
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
    created_at = dt.datetime_(txa.field(4).rep(1), ctx, loc(txa, 4))
    document = {
        "resourceType": "DocumentReference",
        "id": ids.document_reference(f"{dt.c(number, 1)}|{dt.c(number, 2)}"),
        "masterIdentifier": dt.ei(number, ctx),
        "identifier": identifiers,
        "status": AVAILABILITY.get(availability, "current"),
        "docStatus": DOC_STATUS.get(dt.c(txa.field(17).rep(1), 1).upper()),
        "type": doc_type,
        "subject": ref(patient_reference),
        "date": dt.timestamp_instant(created, ctx, loc(txa, 4)) if created else None,
        "author": authors,
        "authenticator": authenticator,
        "content": [
            {"attachment": {**a, "title": title, "creation": created_at}}
            for a in (([_text_attachment(lines)] if lines else []) + encapsulated)
        ],
        "context": {
            "encounter": [ref(encounter_reference)] if encounter_reference else None,
            "related": [ref(r) for r in related],
        },
    }
    out.add(dt.prune(document))
    return out.resources()
