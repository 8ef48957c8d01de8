"""Who pays: Coverage from IN1/IN2 and Account from PID-18 with its GT1 guarantors (HL7 v2-to-FHIR
IG segment maps IN1[Coverage], IN2[Coverage], PID[Account], GT1[Account], MRG[Account]).

Emitted from ADT messages, whose PID and insurance groups are the registration's own; a
result's or an order's PID-18 is a copy and would replace the guarantors an ADT gave.
"""

from __future__ import annotations

from processors.ids import resource_id

from .. import datatypes as dt
from .. import vocab
from ..context import MappingContext
from ..parser import ParsedMessage, Repetition, Segment
from .common import JSON, Output, loc, ref, sending_facility

SUBSCRIBER_RELATIONSHIP = "http://terminology.hl7.org/CodeSystem/subscriber-relationship"
COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"
# Table 0063 (IN1-17 insured's relationship to patient) -> subscriber-relationship.
_SUBSCRIBER = {
    "SEL": "self",
    "SPO": "spouse",
    "DOM": "common",
    "CHD": "child",
    "FCH": "child",
    "SCH": "child",
    "PAR": "parent",
    "MTH": "parent",
    "FTH": "parent",
}


def coverages(msg: ParsedMessage, patient_reference: str, ctx: MappingContext, out: Output) -> None:
    """Each IN1 (with the IN2 after it) -> Coverage of the patient. The payor is the IN1-3
    insurance company (an Organization) or the IN1-4 name; an IN1 naming neither is left out
    (Coverage.payor is required and nothing in the segment says who pays)."""
    patient_id = patient_reference.split("/")[1]
    for in1, in2 in _insurance_groups(msg):
        payor = _payor(in1, ctx, out)
        if payor is None:
            continue
        plan = dt.c(in1.field(2).rep(1), 1)
        policy = dt.c(in1.field(36).rep(1), 1)
        relationship = dt.c(in1.field(17).rep(1), 1).upper()
        classes = [
            _coverage_class("plan", plan, dt.c(in1.field(2).rep(1), 2)),
            _coverage_class("group", dt.c(in1.field(8).rep(1), 1), dt.c(in1.field(9).rep(1), 1)),
        ]
        identifiers = [{"value": policy}] if policy else []
        if in2 is not None:
            member = dt.cx(in2.field(61).rep(1), ctx, sending_facility(msg))
            if member is not None:
                member["type"] = {"coding": [{"system": vocab.V2 + "0203", "code": "MB"}]}
                identifiers.append(member)
        resource = {
            "resourceType": "Coverage",
            "id": resource_id(
                "Coverage",
                patient_id,
                str(payor.get("reference") or payor.get("display") or ""),
                plan,
                policy,
            ),
            "identifier": identifiers,
            "status": "active",
            "type": dt.cwe(in1.field(15).rep(1), ctx, "0086"),
            "subscriberId": dt.c(in1.field(49).rep(1), 1) or policy,
            "beneficiary": ref(patient_reference),
            "relationship": {
                "coding": [
                    {
                        "system": SUBSCRIBER_RELATIONSHIP,
                        "code": _SUBSCRIBER.get(relationship, "other"),
                    }
                ]
            }
            if relationship
            else None,
            "period": {
                "start": dt.date_(in1.field(12).rep(1), loc(in1, 12, msg)),
                "end": dt.date_(in1.field(13).rep(1), loc(in1, 13, msg)),
            },
            "payor": [payor],
            "class": [c for c in classes if c],
            "order": int(dt.c(in1.field(1).rep(1), 1))
            if dt.c(in1.field(1).rep(1), 1).isdigit()
            else None,
        }
        out.add(dt.prune(resource))


def _insurance_groups(msg: ParsedMessage) -> list[tuple[Segment, Segment | None]]:
    groups: list[tuple[Segment, Segment | None]] = []
    for seg in msg.segments():
        if seg.name == "IN1":
            groups.append((seg, None))
        elif seg.name == "IN2" and groups and groups[-1][1] is None:
            groups[-1] = (groups[-1][0], seg)
    return groups


def _payor(in1: Segment, ctx: MappingContext, out: Output) -> JSON | None:
    company_id = in1.field(3).rep(1)
    name = dt.c(in1.field(4).rep(1), 1)
    value = dt.c(company_id, 1)
    if value:
        authority = dt.c(company_id, 4) or "insurance-company"
        system = ctx.authority_system(authority)
        org = dt.prune(
            {
                "resourceType": "Organization",
                "id": resource_id("Organization", system, value),
                "identifier": [{"system": system, "value": value}],
                "active": True,
                "name": name or value,
            }
        )
        return ref(out.add(org), name)
    return {"display": name} if name else None


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


def account(
    msg: ParsedMessage,
    pid: Segment,
    patient_reference: str,
    ctx: MappingContext,
    out: Output,
    *,
    status: str = "active",
) -> str | None:
    """PID-18 patient account number -> Account (status active, as the IG's PID[Account] map
    sets it), guarantors from GT1. None when PID-18 is empty."""
    number = account_identifier(pid.field(18).rep(1), msg, ctx)
    if number is None:
        return None
    resource = {
        "resourceType": "Account",
        "id": account_id(number),
        "identifier": [number],
        "status": status,
        "subject": [ref(patient_reference)],
        "guarantor": [
            g
            for g in (_guarantor(gt1, patient_reference, ctx, out) for gt1 in msg.segments("GT1"))
            if g
        ],
    }
    return out.add(dt.prune(resource))


def account_identifier(rep: Repetition, msg: ParsedMessage, ctx: MappingContext) -> JSON | None:
    ident = dt.cx(rep, ctx, sending_facility(msg))
    if ident is not None:
        ident["type"] = {"coding": [{"system": vocab.V2 + "0203", "code": "AN"}]}
    return ident


def account_id(identifier: JSON) -> str:
    return resource_id("Account", identifier.get("system", ""), identifier["value"])


def _guarantor(
    gt1: Segment, patient_reference: str, ctx: MappingContext, out: Output
) -> JSON | None:
    """GT1 -> Account.guarantor: the patient itself when GT1-11 says SEL, else a RelatedPerson
    (name GT1-3, address GT1-5, phones GT1-6/7, relationship GT1-11); GT1-21 organisation name
    alone -> a display-only party."""
    relation = dt.c(gt1.field(11).rep(1), 1).upper()
    if relation == "SEL":
        return {"party": ref(patient_reference)}
    names = [n for n in (dt.xpn(r) for r in dt.reps(gt1.field(3))) if n]
    if not names:
        org_name = dt.c(gt1.field(21).rep(1), 1)
        return {"party": {"display": org_name}} if org_name else None
    patient_id = patient_reference.split("/")[1]
    set_id = dt.c(gt1.field(1).rep(1), 1) or "1"
    person = dt.prune(
        {
            "resourceType": "RelatedPerson",
            "id": resource_id("RelatedPerson", patient_id, "GT1", set_id),
            "active": True,
            "patient": ref(patient_reference),
            "relationship": [dt.relationship(gt1.field(11).rep(1), ctx)],
            "name": names,
            "telecom": [dt.xtn(r, "home") for r in dt.reps(gt1.field(6))]
            + [dt.xtn(r, "work") for r in dt.reps(gt1.field(7))],
            "address": [dt.xad(r) for r in dt.reps(gt1.field(5))],
        }
    )
    return {"party": ref(out.add(person))}
