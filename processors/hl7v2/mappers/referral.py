"""REF^I12 (patient referral) and REF^I14 (cancel patient referral) -> ServiceRequest.

RF1-6 originating referral identifier (EI, required) -> identifier and the id; RF1-1 status
(table 0283) -> status, a cancel (I14) revokes; RF1-2 priority (table 0280) -> priority; RF1-3
type (table 0281) -> category beside "Patient referral" (SNOMED CT 3457005); RF1-7 effective
date -> authoredOn; RF1-8 expiration -> occurrencePeriod.end; RF1-10 reason -> reasonCode;
RF1-11 external referral identifier -> identifier. PRD per provider: role RP (referring) ->
requester, RT (referred to) / CP (consulting) -> performer. PV1 -> Encounter, DG1 -> Condition
(reasonReference) and PR1 -> Procedure (visit.visit_resources); AL1 -> AllergyIntolerance;
IN1 -> Coverage (insurance); OBR -> ServiceRequest and OBX -> Observation (supportingInfo),
each with the NTEs after it; the other NTEs -> note.
"""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Repetition, Segment
from .common import (
    JSON,
    Output,
    allergies,
    loc,
    notes,
    patient_ref,
    ref,
    require,
    sending_facility,
)
from .coverage import coverages
from .observations import observation
from .requests import service_request
from .visit import visit_resources

TRIGGERS: frozenset[str] = frozenset({"I12", "I14"})
SNOMED = "http://snomed.info/sct"
_STATUS = {"A": "active", "P": "draft", "R": "revoked", "E": "completed", "H": "on-hold"}
_PRIORITY = {"S": "stat", "A": "asap", "R": "routine"}
_REQUESTER_ROLES = frozenset({"RP", "PP"})
_PERFORMER_ROLES = frozenset({"RT", "CP"})


def _provider(msg: ParsedMessage, prd: Segment, ctx: MappingContext, out: Output) -> JSON | None:
    """PRD -> Practitioner: PRD-2 name, PRD-7 identifier (PLN: id ^ type); display-only without
    an identifier."""
    name = dt.xpn(prd.field(2).rep(1))
    pln: Repetition = prd.field(7).rep(1)
    value = dt.c(pln, 1)
    display = " ".join(
        p for p in (*(name or {}).get("given", []), (name or {}).get("family", "")) if p
    )
    if not value:
        return {"display": display} if display else None
    system = ctx.authority_system(dt.c(pln, 2) or sending_facility(msg))
    practitioner = dt.prune(
        {
            "resourceType": "Practitioner",
            "id": ids.practitioner(system, value),
            "identifier": [{"system": system, "value": value}],
            "name": [name],
        }
    )
    return dt.prune({"reference": out.add(practitioner), "display": display})


def _observation_groups(
    msg: ParsedMessage,
) -> tuple[list[tuple[Segment, list[Segment]]], list[tuple[Segment, list[Segment]]], list[Segment]]:
    """(OBR, its NTEs), (OBX, its NTEs) of the OBSERVATION groups, and the referral's own NTEs
    (those that follow neither an OBR nor an OBX)."""
    orders: list[tuple[Segment, list[Segment]]] = []
    results: list[tuple[Segment, list[Segment]]] = []
    own: list[Segment] = []
    last: list[Segment] = own
    for seg in msg.segments():
        if seg.name == "OBR":
            orders.append((seg, []))
            last = orders[-1][1]
        elif seg.name == "OBX":
            results.append((seg, []))
            last = results[-1][1]
        elif seg.name == "NTE":
            last.append(seg)
        elif seg.name in ("PV1", "PV2"):
            last = own
    return orders, results, own


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    rf1 = require(msg, "RF1")
    origin = dt.ei(rf1.field(6).rep(1), ctx)
    if origin is None:
        raise MappingError(loc(rf1, 6, msg), "RF1-6 (originating referral identifier) is required")
    patient_reference = patient_ref(msg, ctx, out)
    visit = visit_resources(msg, patient_reference, ctx, out)
    encounter_reference = visit.encounter
    requester = None
    performers = []
    for prd in msg.segments("PRD"):
        role = dt.c(prd.field(1).rep(1), 1).upper()
        who = _provider(msg, prd, ctx, out)
        if who is None:
            continue
        if role in _REQUESTER_ROLES and requester is None:
            requester = who
        elif role in _PERFORMER_ROLES:
            performers.append(who)
    coverage_refs = coverages(msg, patient_reference, ctx, out)
    allergies(msg, patient_reference, ctx, out)
    key = f"referral|{origin['value']}|{dt.c(rf1.field(6).rep(1), 2)}"
    orders, results, referral_notes = _observation_groups(msg)
    answers = [
        r
        for r in (
            service_request(
                msg, None, obr, obr_notes, patient_reference, encounter_reference, ctx, out,
                default_status="unknown",
            )
            for obr, obr_notes in orders
        )
        if r
    ] + [
        observation(
            msg, obx, obx_notes, key, None, patient_reference, encounter_reference, [], ctx,
            out, category=None,
        )
        for obx, obx_notes in results
    ]  # fmt: skip
    status = _STATUS.get(dt.c(rf1.field(1).rep(1), 1).upper(), "active")
    if msg.message_type[1] == "I14":
        status = "revoked"
    referral_type = dt.cwe(rf1.field(3).rep(1), ctx, "0281")
    external = dt.ei(rf1.field(11).rep(1), ctx)
    expires = dt.datetime_(rf1.field(8).rep(1), ctx, loc(rf1, 8, msg))
    request = {
        "resourceType": "ServiceRequest",
        "id": ids.service_request(key),
        "identifier": [origin, external],
        "status": status,
        "intent": "order",
        "category": [
            {"coding": [{"system": SNOMED, "code": "3457005", "display": "Patient referral"}]},
            referral_type,
        ],
        "priority": _PRIORITY.get(dt.c(rf1.field(2).rep(1), 1).upper()),
        "subject": ref(patient_reference),
        "encounter": ref(encounter_reference) if encounter_reference else None,
        "occurrencePeriod": {"end": expires} if expires else None,
        "authoredOn": dt.datetime_(rf1.field(7).rep(1), ctx, loc(rf1, 7, msg)),
        "requester": requester,
        "performer": performers,
        "reasonCode": [dt.cwe(r, ctx, "0336") for r in dt.reps(rf1.field(10))],
        "reasonReference": [ref(r) for r in visit.conditions],
        "insurance": [ref(c) for c in coverage_refs],
        "supportingInfo": [ref(a) for a in answers],
        "note": notes(referral_notes),
    }
    out.add(dt.prune(request))
    return out.resources()
