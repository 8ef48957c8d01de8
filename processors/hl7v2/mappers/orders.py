"""ORM^O01 and OML^O21 -> ServiceRequest per ORC/OBR order (with the Patient, requester)."""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import (
    JSON,
    Output,
    loc,
    notes,
    patient_ref,
    practitioner_ref,
    ref,
)
from .visit import visit_resources

# HL7 table 0027 priority (OBR-5 / TQ1-9 / ORC-7.6) -> ServiceRequest.priority.
PRIORITY = {"S": "stat", "A": "asap", "R": "routine", "T": "urgent", "P": "urgent"}


def _orders(msg: ParsedMessage) -> list[tuple[Segment | None, Segment | None, list[Segment]]]:
    """(ORC, OBR, NTEs) per order: an ORC opens an order, the OBR that follows belongs to it."""
    orders: list[tuple[Segment | None, Segment | None, list[Segment]]] = []
    for seg in msg.segments():
        if seg.name == "ORC":
            orders.append((seg, None, []))
        elif seg.name == "OBR":
            if orders and orders[-1][1] is None and orders[-1][0] is not None:
                orc, _, nts = orders[-1]
                orders[-1] = (orc, seg, nts)
            else:
                orders.append((None, seg, []))
        elif seg.name == "NTE" and orders:
            orders[-1][2].append(seg)
    return orders


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = visit_resources(msg, patient_reference, ctx, out)
    orders = _orders(msg)
    if not orders:
        raise MappingError("ORC", "an order message needs at least one ORC or OBR")
    for orc, obr, nts in orders:
        _request(msg, orc, obr, nts, patient_reference, encounter_reference, ctx, out)
    return out.resources()


def _ei(seg: Segment | None, field_no: int) -> tuple[str, str]:
    if seg is None:
        return "", ""
    rep = seg.field(field_no).rep(1)
    return dt.c(rep, 1), dt.c(rep, 2)


def _identifier(parts: tuple[str, str], kind: str) -> JSON | None:
    value, ns = parts
    if not value:
        return None
    ident: JSON = {
        "type": {"coding": [{"system": vocab.V2 + "0203", "code": kind}]},
        "value": value,
    }
    if ns:
        ident["system"] = "urn:carelog:sid:" + ns
    return ident


def _request(
    msg: ParsedMessage,
    orc: Segment | None,
    obr: Segment | None,
    nts: list[Segment],
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    placer = _ei(orc, 2) if _ei(orc, 2)[0] else _ei(obr, 2)
    filler = _ei(orc, 3) if _ei(orc, 3)[0] else _ei(obr, 3)
    if not placer[0]:
        where = loc(orc, 2, msg) if orc is not None else "OBR-2"
        raise MappingError(where, "the placer order number (ORC-2 / OBR-2) is required")
    control = dt.c(orc.field(1).rep(1), 1).upper() if orc is not None else "NW"
    order_status = dt.c(orc.field(5).rep(1), 1).upper() if orc is not None else ""
    status = vocab.ORDER_STATUS.get(order_status) or vocab.ORDER_CONTROL_STATUS.get(control)
    if status is None:
        raise MappingError(
            loc(orc, 1, msg) if orc else "ORC-1", f"order control {control!r} is not supported"
        )
    code = dt.cwe(obr.field(4).rep(1), ctx) if obr is not None else None
    requester = None
    for seg, field_no in ((orc, 12), (obr, 16)):
        if seg is not None and dt.reps(seg.field(field_no)):
            requester = practitioner_ref(seg.field(field_no).rep(1), msg, ctx, out)
            break
    priority_code = dt.c(obr.field(5).rep(1), 1) if obr is not None else ""
    if not priority_code and orc is not None:
        priority_code = dt.c(orc.field(7).rep(1), 6)
    tq1 = msg.segment("TQ1")
    if not priority_code and tq1 is not None:
        priority_code = dt.c(tq1.field(9).rep(1), 1)
    occurrence = None
    if obr is not None:
        for field_no in (6, 7):
            if dt.c(obr.field(field_no).rep(1), 1):
                occurrence = dt.datetime_(obr.field(field_no).rep(1), ctx, loc(obr, field_no, msg))
                break
    authored = dt.datetime_(orc.field(9).rep(1), ctx, loc(orc, 9, msg)) if orc is not None else None
    request = {
        "resourceType": "ServiceRequest",
        "id": ids.service_request(f"{placer[0]}|{placer[1]}"),
        "identifier": [i for i in (_identifier(placer, "PLAC"), _identifier(filler, "FILL")) if i],
        "status": status,
        "intent": "order",
        "priority": PRIORITY.get(priority_code.upper()),
        "code": code,
        "subject": ref(patient_reference),
        "encounter": ref(encounter_reference) if encounter_reference else None,
        "occurrenceDateTime": occurrence,
        "authoredOn": authored,
        "requester": requester,
        "note": notes(nts),
    }
    out.add(dt.prune(request))
