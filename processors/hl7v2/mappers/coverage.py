"""IN1 -> Coverage (with the payor Organization), after the IG's IN1[Coverage] segment map.

IN1-2 plan -> class "plan"; IN1-3 / IN1-4 insurance company -> payor Organization (IN1-3 or
IN1-4 required: a Coverage needs a payor); IN1-8 / IN1-9 group -> class "group"; IN1-12 / IN1-13
-> period; IN1-15 plan type (table 0086) -> type; IN1-17 insured's relationship (table 0063)
-> relationship; IN1-36 policy number -> identifier; IN1-49 insured's id -> subscriberId.
The id derives from the patient, the payor and the policy number (else the plan and IN1-1).
"""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import JSON, Output, loc, ref, sending_facility

COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
# HL7 table 0063 (IN1-17) -> subscriber-relationship.
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


def _payor(msg: ParsedMessage, in1: Segment, ctx: MappingContext) -> JSON:
    company = dt.cx(in1.field(3).rep(1), ctx, sending_facility(msg))
    name = dt.c(in1.field(4).rep(1), 1)
    if company is None and not name:
        raise MappingError(
            loc(in1, 3, msg), "IN1-3 (insurance company id) or IN1-4 (its name) is required"
        )
    system = company.get("system", "") if company else ctx.identifier_system_base + "payor"
    value = company["value"] if company else name
    return dt.prune(
        {
            "resourceType": "Organization",
            "id": ids.organization(system, value),
            "identifier": [company] if company else None,
            "active": True,
            "name": name or value,
        }
    )


def coverages(
    msg: ParsedMessage, patient_reference: str, ctx: MappingContext, out: Output
) -> list[str]:
    """Every IN1 of the message -> Coverage; returns their references in order."""
    refs = []
    patient_id = patient_reference.split("/")[1]
    for in1 in msg.segments("IN1"):
        payor = _payor(msg, in1, ctx)
        payor_reference = out.add(payor)
        plan = dt.cwe(in1.field(2).rep(1), ctx)
        plan_code = dt.c(in1.field(2).rep(1), 1)
        policy = dt.c(in1.field(36).rep(1), 1)
        group_number = dt.c(in1.field(8).rep(1), 1)
        classes = []
        if plan_code:
            classes.append(
                {
                    "type": {"coding": [{"system": COVERAGE_CLASS, "code": "plan"}]},
                    "value": plan_code,
                    "name": dt.c(in1.field(2).rep(1), 2) or (plan or {}).get("text"),
                }
            )
        if group_number:
            classes.append(
                {
                    "type": {"coding": [{"system": COVERAGE_CLASS, "code": "group"}]},
                    "value": group_number,
                    "name": dt.c(in1.field(9).rep(1), 1),
                }
            )
        relationship = _RELATIONSHIP.get(dt.c(in1.field(17).rep(1), 1).upper())
        plan_type = dt.c(in1.field(15).rep(1), 1)
        key = (payor["id"], policy) if policy else (payor["id"], plan_code, in1.field(1).value)
        resource = {
            "resourceType": "Coverage",
            "id": ids.coverage(patient_id, *key),
            "identifier": [{"value": policy}] if policy else None,
            "status": "active",
            "type": dt.table_concept(plan_type, "0086") if plan_type else None,
            "subscriberId": dt.c(in1.field(49).rep(1), 1),
            "beneficiary": ref(patient_reference),
            "relationship": {"coding": [{"system": SUBSCRIBER_RELATIONSHIP, "code": relationship}]}
            if relationship
            else None,
            "period": {
                "start": dt.date_(in1.field(12).rep(1), loc(in1, 12, msg)),
                "end": dt.date_(in1.field(13).rep(1), loc(in1, 13, msg)),
            },
            "payor": [ref(payor_reference)],
            "class": classes,
        }
        refs.append(out.add(dt.prune(resource)))
    return refs
