"""IN1 (with the IN2 after it) -> Coverage and its payor Organization, after the IG's IN1[Coverage]
and IN2[Coverage] segment maps. The one Coverage builder of every message family (ADT, BAR/DFT,
REF), so one IN1 gives the same Coverage id whichever message carries it.

IN1-2 plan -> class "plan"; IN1-3 insurance company (CX) / IN1-4 its name -> payor: an
Organization when IN1-3 is sent, else a display-only reference to the IN1-4 name; an IN1 naming
neither is left out, not refused (Coverage.payor is required, and an optional segment never
costs the message). IN1-8 / IN1-9 group -> class "group"; IN1-12 / IN1-13 -> period; IN1-15 plan
type (table 0086) -> type; IN1-17 insured's relationship (table 0063) -> relationship; IN1-36
policy number -> identifier; IN1-49 insured's id (else the policy number) -> subscriberId;
IN2-61 member id -> identifier (type MB); IN1-1 -> order.
The id derives from the patient, the payor and the policy number (else the plan and IN1-1).
"""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..parser import ParsedMessage, Segment
from .common import JSON, Output, loc, ref, sending_facility

COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
# HL7 table 0063 (IN1-17) -> subscriber-relationship; a code not listed is left out.
_RELATIONSHIP = {
    "SEL": "self",
    "SPO": "spouse",
    "DOM": "common",
    "CHD": "child",
    "FCH": "child",
    "SCH": "child",
    "PAR": "parent",
    "MTH": "parent",
    "FTH": "parent",
    "EME": "other",
    "OTH": "other",
}


def coverages(
    msg: ParsedMessage, patient_reference: str, ctx: MappingContext, out: Output
) -> list[str]:
    """Every IN1 of the message that names a payor -> Coverage; their references in order."""
    refs = []
    patient_id = patient_reference.split("/")[1]
    for in1, in2 in _insurance_groups(msg):
        payor = _payor(msg, in1, ctx, out)
        if payor is None:
            continue
        plan_code = dt.c(in1.field(2).rep(1), 1)
        policy = dt.c(in1.field(36).rep(1), 1)
        # the payor Organization's id, else its name
        payor_key = str(payor.get("reference", "")).split("/")[-1] or str(payor["display"])
        key = (payor_key, policy) if policy else (payor_key, plan_code, in1.field(1).value)
        identifiers = [{"value": policy}] if policy else []
        if in2 is not None:
            member = dt.cx(in2.field(61).rep(1), ctx, sending_facility(msg))
            if member is not None:
                member["type"] = {"coding": [{"system": vocab.V2 + "0203", "code": "MB"}]}
                identifiers.append(member)
        relationship = _RELATIONSHIP.get(dt.c(in1.field(17).rep(1), 1).upper())
        set_id = dt.c(in1.field(1).rep(1), 1)
        resource = {
            "resourceType": "Coverage",
            "id": ids.coverage(patient_id, *key),
            "identifier": identifiers,
            "status": "active",
            "type": dt.cwe(in1.field(15).rep(1), ctx, "0086"),
            "subscriberId": dt.c(in1.field(49).rep(1), 1) or policy,
            "beneficiary": ref(patient_reference),
            "relationship": {"coding": [{"system": SUBSCRIBER_RELATIONSHIP, "code": relationship}]}
            if relationship
            else None,
            "period": {
                "start": dt.date_(in1.field(12).rep(1), loc(in1, 12, msg)),
                "end": dt.date_(in1.field(13).rep(1), loc(in1, 13, msg)),
            },
            "payor": [payor],
            "class": [c for c in _classes(in1, ctx) if c],
            "order": int(set_id) if set_id.isdigit() else None,
        }
        refs.append(out.add(dt.prune(resource)))
    return refs


def _insurance_groups(msg: ParsedMessage) -> list[tuple[Segment, Segment | None]]:
    """Each IN1 with the IN2 that follows it, if any."""
    groups: list[tuple[Segment, Segment | None]] = []
    for seg in msg.segments():
        if seg.name == "IN1":
            groups.append((seg, None))
        elif seg.name == "IN2" and groups and groups[-1][1] is None:
            groups[-1] = (groups[-1][0], seg)
    return groups


def _payor(msg: ParsedMessage, in1: Segment, ctx: MappingContext, out: Output) -> JSON | None:
    """IN1-3 -> the insurance company Organization (named IN1-4), referenced with its name;
    IN1-4 alone -> a display-only reference; neither -> None."""
    company = dt.cx(in1.field(3).rep(1), ctx, sending_facility(msg))
    name = dt.c(in1.field(4).rep(1), 1)
    if company is None:
        return {"display": name} if name else None
    organization = dt.prune(
        {
            "resourceType": "Organization",
            "id": ids.organization(company.get("system", ""), company["value"]),
            "identifier": [company],
            "active": True,
            "name": name or company["value"],
        }
    )
    return ref(out.add(organization), name)


def _classes(in1: Segment, ctx: MappingContext) -> list[JSON | None]:
    plan = in1.field(2).rep(1)
    plan_name = dt.c(plan, 2) or (dt.cwe(plan, ctx) or {}).get("text", "")
    return [
        _coverage_class("plan", dt.c(plan, 1), plan_name),
        _coverage_class("group", dt.c(in1.field(8).rep(1), 1), dt.c(in1.field(9).rep(1), 1)),
    ]


def _coverage_class(kind: str, value: str, name: str) -> JSON | None:
    if not value:
        return None
    return dt.prune(
        {
            "type": {"coding": [{"system": COVERAGE_CLASS, "code": kind}]},
            "value": value,
            "name": name,
        }
    )
