"""Account from PID-18 with its GT1 guarantors (HL7 v2-to-FHIR IG segment maps PID[Account],
GT1[Account], MRG[Account]): the one Account builder of ADT and the financial messages (BAR/DFT),
so one account number gives the same Account id whichever message carries it. Coverage is
mappers/coverage.py.

Emitted from ADT and financial messages, whose PID is the registration's or the billing's own;
a result's or an order's PID-18 is a copy and would replace the guarantors an ADT gave.
"""

from __future__ import annotations

from collections.abc import Sequence

from processors.ids import resource_id

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..parser import ParsedMessage, Repetition, Segment
from .common import JSON, Output, ref, sending_facility


def account(
    msg: ParsedMessage,
    pid: Segment,
    patient_reference: str,
    ctx: MappingContext,
    out: Output,
    *,
    status: str = "active",
    coverage_references: Sequence[str] = (),
    visit_number_fallback: bool = False,
) -> str | None:
    """PID-18 patient account number -> Account (status active, as the IG's PID[Account] map
    sets it), guarantors from GT1, coverage in the order given. With `visit_number_fallback`
    (financial messages) PV1-19 stands in for a missing PID-18. None without a number."""
    number = account_identifier(pid.field(18).rep(1), msg, ctx)
    pv1 = msg.segment("PV1")
    if number is None and visit_number_fallback and pv1 is not None:
        number = account_identifier(pv1.field(19).rep(1), msg, ctx)
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
        "coverage": [
            {"coverage": ref(c), "priority": n} for n, c in enumerate(coverage_references, 1)
        ],
    }
    return out.add(dt.prune(resource))


def account_identifier(rep: Repetition, msg: ParsedMessage, ctx: MappingContext) -> JSON | None:
    ident = dt.cx(rep, ctx, sending_facility(msg))
    if ident is not None:
        ident["type"] = {"coding": [{"system": vocab.V2 + "0203", "code": "AN"}]}
    return ident


def account_id(identifier: JSON) -> str:
    return ids.account(identifier.get("system", ""), identifier["value"])


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
