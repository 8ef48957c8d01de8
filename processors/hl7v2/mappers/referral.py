"""REF^I12 (patient referral) and REF^I14 (cancel patient referral) -> ServiceRequest.

RF1-6 originating referral identifier (EI, required) -> identifier and the id; RF1-1 status
(table 0283) -> status, a cancel (I14) revokes; RF1-2 priority (table 0280) -> priority; RF1-3
type (table 0281) -> category beside "Patient referral" (SNOMED CT 3457005); RF1-7 effective
date -> authoredOn; RF1-8 expiration -> occurrencePeriod.end; RF1-10 reason -> reasonCode;
RF1-11 external referral identifier -> identifier. PRD per provider: role RP (referring) ->
requester, RT (referred to) / CP (consulting) -> performer. DG1 -> Condition (reasonReference),
AL1 -> AllergyIntolerance, IN1 -> Coverage (insurance), OBX -> Observation (supportingInfo),
NTE -> note.
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
    conditions,
    encounter_ref_if_known,
    loc,
    notes,
    patient_ref,
    ref,
    require,
    sending_facility,
)
from .coverage import coverages
from .observations import observation

TRIGGERS = frozenset({"I12", "I14"})
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


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    rf1 = require(msg, "RF1")
    origin = dt.ei(rf1.field(6).rep(1), ctx)
    if origin is None:
        raise MappingError(loc(rf1, 6), "RF1-6 (originating referral identifier) is required")
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = encounter_ref_if_known(msg, patient_reference, ctx)
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
    before = {id(r) for r in out.resources()}
    conditions(msg, patient_reference, encounter_reference, ctx, out)
    reasons = [
        f"Condition/{r['id']}"
        for r in out.resources()
        if r["resourceType"] == "Condition" and id(r) not in before
    ]
    key = f"referral|{origin['value']}|{dt.c(rf1.field(6).rep(1), 2)}"
    answers = [
        observation(
            msg, obx, [], key, None, patient_reference, encounter_reference, [], ctx, out,
            category=None,
        )
        for obx in msg.segments("OBX")
    ]  # fmt: skip
    status = _STATUS.get(dt.c(rf1.field(1).rep(1), 1).upper(), "active")
    if msg.message_type[1] == "I14":
        status = "revoked"
    referral_type = dt.cwe(rf1.field(3).rep(1), ctx, "0281")
    external = dt.ei(rf1.field(11).rep(1), ctx)
    expires = dt.datetime_(rf1.field(8).rep(1), ctx, loc(rf1, 8))
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
        "authoredOn": dt.datetime_(rf1.field(7).rep(1), ctx, loc(rf1, 7)),
        "requester": requester,
        "performer": performers,
        "reasonCode": [dt.cwe(r, ctx, "0336") for r in dt.reps(rf1.field(10))],
        "reasonReference": [ref(r) for r in reasons],
        "insurance": [ref(c) for c in coverage_refs],
        "supportingInfo": [ref(a) for a in answers],
        "note": notes(msg.segments("NTE")),
    }
    out.add(dt.prune(request))
    return out.resources()
