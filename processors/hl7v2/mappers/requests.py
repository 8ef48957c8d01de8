"""ORC/OBR -> ServiceRequest, shared by orders (ORM, OML, OMG), results (ORU, OUL) and documents.

The id derives from the placer order number (ORC-2, else OBR-2), else from the filler order
number (ORC-3, else OBR-3), so an order and the results or documents that answer it name the
same ServiceRequest (DiagnosticReport.basedOn, DocumentReference.basedOn).
"""

from __future__ import annotations

from collections.abc import Sequence

from processors.ids import order_identifier

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import Output, loc, notes, practitioner_ref, ref

# HL7 table 0027 priority (OBR-5 / TQ1-9 / ORC-7.6) -> ServiceRequest.priority.
PRIORITY = {"S": "stat", "A": "asap", "R": "routine", "T": "urgent", "P": "urgent"}


def entity_id(seg: Segment | None, field_no: int) -> tuple[str, str]:
    """(EI-1 value, EI-2 namespace) of an order number field; empty when not sent."""
    if seg is None:
        return "", ""
    rep = seg.field(field_no).rep(1)
    return dt.c(rep, 1), dt.c(rep, 2)


def order_numbers(
    orc: Segment | None, obr: Segment | None
) -> tuple[tuple[str, str], tuple[str, str]]:
    """(placer, filler) order numbers: ORC-2/ORC-3, else OBR-2/OBR-3."""
    placer = entity_id(orc, 2) if entity_id(orc, 2)[0] else entity_id(obr, 2)
    filler = entity_id(orc, 3) if entity_id(orc, 3)[0] else entity_id(obr, 3)
    return placer, filler


def request_id(placer: tuple[str, str], filler: tuple[str, str]) -> str | None:
    """The ServiceRequest id of an order: from its placer number, else its filler number."""
    if placer[0]:
        return ids.service_request(f"{placer[0]}|{placer[1]}")
    if filler[0]:
        return ids.service_request(f"filler|{filler[0]}|{filler[1]}")
    return None


def request_status(msg: ParsedMessage, orc: Segment | None, default: str | None) -> str:
    """ORC-5 order status (table 0038), else ORC-1 order control (table 0119).

    Orders pass default None: without an ORC an order is new (active); an order control
    carelog does not know is an error at ORC-1, which tolerance.POLICY drops (the status is
    then unknown). Results and documents pass "unknown": their ORC only echoes the order.
    """
    if orc is None:
        return default or "active"
    control = dt.c(orc.field(1).rep(1), 1).upper()
    order_status = dt.c(orc.field(5).rep(1), 1).upper()
    status = vocab.ORDER_STATUS.get(order_status) or vocab.ORDER_CONTROL_STATUS.get(control)
    if status is not None:
        return status
    if default is not None:
        return default
    if not control:
        return "unknown"
    raise MappingError(loc(orc, 1, msg), f"order control {control!r} is not supported")


def service_request(
    msg: ParsedMessage,
    orc: Segment | None,
    obr: Segment | None,
    nts: Sequence[Segment],
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
    *,
    default_status: str | None = None,
    specimens: Sequence[str] = (),
    supporting_info: Sequence[str] = (),
) -> str | None:
    """ORC (+ OBR) -> ServiceRequest; None when the order has no placer nor filler number."""
    placer, filler = order_numbers(orc, obr)
    rid = request_id(placer, filler)
    if rid is None:
        return None
    status = request_status(msg, orc, default_status)
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
        "id": rid,
        "identifier": [
            i
            for i in (
                order_identifier(placer, "PLAC", ctx.authority_system),
                order_identifier(filler, "FILL", ctx.authority_system),
            )
            if i
        ],
        "status": status,
        "intent": "order",
        "priority": PRIORITY.get(priority_code.upper()),
        "code": code,
        "subject": ref(patient_reference),
        "encounter": ref(encounter_reference) if encounter_reference else None,
        "occurrenceDateTime": occurrence,
        "authoredOn": authored,
        "requester": requester,
        "supportingInfo": [ref(s) for s in supporting_info],
        "specimen": [ref(s) for s in specimens],
        "note": notes(nts),
    }
    return out.add(dt.prune(request))
