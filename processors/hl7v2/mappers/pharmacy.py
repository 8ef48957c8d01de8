"""Pharmacy and treatment orders, per the v2-to-FHIR IG's message maps:

  RDE^O11/O25 (ORC/RXE)  -> MedicationRequest        OMP^O09, ORM^O01 with RXO -> MedicationRequest
  RDS^O13 (ORC/RXD)      -> MedicationDispense        RAS^O17 (ORC/RXA)         -> MedicationAdministration

each with the Patient, the requester (ORC-12), RXR route and site, NTE notes and OBX answers
(Observation, the request's supportingInformation). An order group is an ORC and what follows
it up to the next ORC; its MedicationRequest id derives from the placer order number (ORC-2),
else the filler's (ORC-3), as the ServiceRequest's does, so a dispense or administration
names the request it answers (authorizingPrescription, request).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processors.ids import order_identifier

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError, StructureError
from ..parser import Field, ParsedMessage, Segment
from .common import (
    JSON,
    Output,
    loc,
    notes,
    patient_ref,
    practitioner_ref,
    ref,
    required_code,
    required_time,
)
from .observations import observation
from .requests import entity_id, request_status
from .visit import visit_resources

TRIGGERS: dict[str, frozenset[str]] = {
    "RDE": frozenset({"O11", "O25"}),
    "RDS": frozenset({"O13"}),
    "RAS": frozenset({"O17"}),
    "OMP": frozenset({"O09"}),
}
# ServiceRequest's "revoked" (tables 0038 / 0119 via vocab) is MedicationRequest's "cancelled".
_REQUEST_STATUS = {"revoked": "cancelled"}
# HL7 table 0322 completion status (RXA-20) -> MedicationAdministration.status.
_ADMINISTRATION_STATUS = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}
# HL7 table 0161 allow substitution (RXO-9 / RXE-9).
_SUBSTITUTION = {"N": False, "G": True, "T": True}

Result = tuple[Segment, list[Segment]]


@dataclass
class _Administration:
    rxa: Segment
    rxrs: list[Segment] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)  # RAS: OBSERVATION after the RXA


@dataclass
class PharmacyOrder:
    """One ORDER group: an ORC and the pharmacy segments after it."""

    orc: Segment | None
    give: Segment | None = None  # RXO (order) or RXE (encoded order)
    rxrs: list[Segment] = field(default_factory=list)
    dispenses: list[Segment] = field(default_factory=list)
    administrations: list[_Administration] = field(default_factory=list)
    notes: list[Segment] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)


def order_groups(msg: ParsedMessage) -> list[PharmacyOrder]:
    groups: list[PharmacyOrder] = []
    for seg in msg.segments():
        name = seg.name
        if name == "ORC":
            groups.append(PharmacyOrder(seg))
            continue
        if name in ("RXO", "RXE", "RXD", "RXA") and not groups:
            groups.append(PharmacyOrder(None))
        if not groups:
            continue
        group = groups[-1]
        if name in ("RXO", "RXE"):
            if group.give is None or group.give.name == "RXO":  # RDS may send RXO and RXE
                group.give = seg
        elif name == "RXD":
            group.dispenses.append(seg)
        elif name == "RXA":
            group.administrations.append(_Administration(seg))
        elif name == "RXR":
            (group.administrations[-1].rxrs if group.administrations else group.rxrs).append(seg)
        elif name == "OBX":
            owner = group.administrations[-1] if group.administrations else group
            owner.results.append((seg, []))
        elif name == "NTE":
            owner = group.administrations[-1] if group.administrations else group
            if owner.results:
                owner.results[-1][1].append(seg)
            else:
                group.notes.append(seg)
    return groups


def order_key(msg: ParsedMessage, group: PharmacyOrder) -> str:
    placer, filler = entity_id(group.orc, 2), entity_id(group.orc, 3)
    if placer[0]:
        return f"{placer[0]}|{placer[1]}"
    if filler[0]:
        return f"filler|{filler[0]}|{filler[1]}"
    where = loc(group.orc, 2, msg) if group.orc is not None else "ORC-2"
    raise MappingError(where, "a pharmacy order needs a placer (ORC-2) or filler (ORC-3) number")


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = visit_resources(msg, patient_reference, ctx, out).encounter
    groups = order_groups(msg)
    code, trigger, _ = msg.message_type
    if not groups:
        raise MappingError("ORC", f"an {code}^{trigger} needs at least one ORC order group")
    for group in groups:
        map_group(msg, group, patient_reference, encounter_reference, ctx, out)
    return out.resources()


def map_group(
    msg: ParsedMessage,
    group: PharmacyOrder,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    """One order group -> its MedicationRequest (when RXO/RXE is sent), dispenses and
    administrations, and the Observations of its OBX."""
    key = order_key(msg, group)
    answers = [
        observation(
            msg,
            obx,
            obx_notes,
            f"medication-order|{key}",
            None,
            patient_reference,
            encounter_reference,
            [],
            ctx,
            out,
            category=None,
        )
        for obx, obx_notes in group.results
    ]
    # The order's MedicationRequest: written here when RXO/RXE is sent, else the one the
    # order message (RDE, OMP) wrote under the same order number.
    request = f"MedicationRequest/{ids.medication_request(key)}"
    if group.give is not None:
        medication_request(
            msg, group, key, answers, patient_reference, encounter_reference, ctx, out
        )
        answers = []  # carried by the request
    for rxd in group.dispenses:
        _dispense(
            msg, group, rxd, key, request, answers, patient_reference, encounter_reference,
            ctx, out,
        )  # fmt: skip
    for admin in group.administrations:
        administration = _administration(
            msg, group, admin, key, request, answers, patient_reference, encounter_reference,
            ctx, out,
        )  # fmt: skip
        for obx, obx_notes in admin.results:
            observation(
                msg, obx, obx_notes, administration, None, patient_reference,
                encounter_reference, [], ctx, out, category=None, part_of=administration,
            )  # fmt: skip
    if group.give is None and not group.dispenses and not group.administrations:
        where = loc(group.orc, 1, msg) if group.orc is not None else "ORC"
        raise StructureError(where, "the order group has no RXO, RXE, RXD or RXA segment")


def _texts(instructions: Field) -> list[str]:
    """CWE instructions -> their texts (CWE-2, else CWE-1)."""
    return [t for t in (dt.c(r, 2) or dt.c(r, 1) for r in dt.reps(instructions)) if t]


def _dose(msg: ParsedMessage, seg: Segment, low: int, high: int, units: int) -> JSON | None:
    """Give amount minimum / maximum (RXO-2/3, RXE-3/4) with units -> doseQuantity / doseRange."""
    lo, hi = dt.c(seg.field(low).rep(1), 1), dt.c(seg.field(high).rep(1), 1)
    unit = seg.field(units).rep(1)
    if lo and hi and lo != hi:
        return {
            "doseRange": {
                "low": dt.quantity(lo, unit, loc(seg, low, msg)),
                "high": dt.quantity(hi, unit, loc(seg, high, msg)),
            }
        }
    if lo:
        return {"doseQuantity": dt.quantity(lo, unit, loc(seg, low, msg))}
    return None


def _route(rxrs: list[Segment], ctx: MappingContext) -> JSON:
    if not rxrs:
        return {}
    rxr = rxrs[0]
    return {
        "route": dt.cwe(rxr.field(1).rep(1), ctx, "0162"),
        "site": dt.cwe(rxr.field(2).rep(1), ctx, "0163"),
        "method": dt.cwe(rxr.field(4).rep(1), ctx, "0165"),
    }


def medication_request(
    msg: ParsedMessage,
    group: PharmacyOrder,
    key: str,
    supporting: list[str],
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> str:
    """RXO (OMP, ORM) or RXE (RDE, RDS) -> MedicationRequest. The field numbers differ: RXE
    puts the give code in RXE-2 (RXE-1 is the old quantity/timing), RXO in RXO-1."""
    give = group.give
    assert give is not None
    encoded = give.name == "RXE"
    code_field = 2 if encoded else 1
    medication = required_code(give, code_field, "give code", msg, ctx)
    # RXO-5 / RXE-6 dosage form maps to a contained Medication.form in the IG: not mapped yet.
    # administration instructions: RXE-7 / RXO-7 -> dosage text; RXO-6 pharmacy instructions
    # -> note
    low, high, units, instructions = (3, 4, 5, 7) if encoded else (2, 3, 4, 7)
    dispense_amount, dispense_units, refills, substitution = (
        (10, 11, 12, 9) if encoded else (11, 12, 13, 9)
    )
    orc = group.orc
    status = request_status(msg, orc, None) if orc is not None else "active"
    requester = None
    if orc is not None and dt.reps(orc.field(12)):
        requester = practitioner_ref(orc.field(12).rep(1), msg, ctx, out)
    amount = dt.c(give.field(dispense_amount).rep(1), 1)
    repeats = dt.c(give.field(refills).rep(1), 1)
    allowed = _SUBSTITUTION.get(dt.c(give.field(substitution).rep(1), 1).upper())
    dosage = {
        "text": "; ".join(_texts(give.field(instructions))),
        **_route(group.rxrs, ctx),
        "doseAndRate": [_dose(msg, give, low, high, units)],
    }
    placer, filler = entity_id(orc, 2), entity_id(orc, 3)
    resource = {
        "resourceType": "MedicationRequest",
        "id": ids.medication_request(key),
        "identifier": [
            i
            for i in (
                order_identifier(placer, "PLAC", ctx.authority_system),
                order_identifier(filler, "FILL", ctx.authority_system),
            )
            if i
        ],
        "status": _REQUEST_STATUS.get(status, status),
        "intent": "order",
        "medicationCodeableConcept": medication,
        "subject": ref(patient_reference),
        "encounter": ref(encounter_reference) if encounter_reference else None,
        "supportingInformation": [ref(s) for s in supporting],
        "authoredOn": dt.datetime_(orc.field(9).rep(1), ctx, loc(orc, 9, msg)) if orc else None,
        "requester": requester,
        "note": notes(group.notes)
        + [{"text": t} for t in (() if encoded else _texts(give.field(6)))],
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "quantity": dt.quantity(
                amount, give.field(dispense_units).rep(1), loc(give, dispense_amount, msg)
            )
            if amount
            else None,
            "numberOfRepeatsAllowed": int(repeats) if repeats.isdigit() else None,
        },
        "substitution": {"allowedBoolean": allowed} if allowed is not None else None,
    }
    return out.add(dt.prune(resource))


def _dispense(
    msg: ParsedMessage,
    group: PharmacyOrder,
    rxd: Segment,
    key: str,
    request: str,
    answers: list[str],
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> str:
    """RXD -> MedicationDispense: RXD-2 code, RXD-3 handed over, RXD-4/5 quantity, RXD-7
    prescription number, RXD-10 dispensing provider."""
    medication = required_code(rxd, 2, "dispense/give code", msg, ctx)
    amount = dt.c(rxd.field(4).rep(1), 1)
    prescription = dt.c(rxd.field(7).rep(1), 1)
    dispensed = dt.c(rxd.field(3).rep(1), 1)
    performer = [
        {"actor": who}
        for who in (practitioner_ref(r, msg, ctx, out) for r in dt.reps(rxd.field(10)))
        if who
    ]
    resource = {
        "resourceType": "MedicationDispense",
        "id": ids.medication_dispense(key, rxd.field(1).value.strip(), prescription, dispensed),
        "identifier": [{"value": prescription}] if prescription else None,
        "status": "completed",
        "medicationCodeableConcept": medication,
        "subject": ref(patient_reference),
        "context": ref(encounter_reference) if encounter_reference else None,
        "performer": performer,
        "supportingInformation": [ref(a) for a in answers],
        "authorizingPrescription": [ref(request)],
        "quantity": dt.quantity(amount, rxd.field(5).rep(1), loc(rxd, 4, msg)) if amount else None,
        "whenHandedOver": dt.datetime_(rxd.field(3).rep(1), ctx, loc(rxd, 3, msg)),
        "note": notes(group.notes) if group.give is None else None,
    }
    return out.add(dt.prune(resource))


def _administration(
    msg: ParsedMessage,
    group: PharmacyOrder,
    admin: _Administration,
    key: str,
    request: str,
    answers: list[str],
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> str:
    """RXA -> MedicationAdministration: RXA-3/4 period, RXA-5 code, RXA-6/7 dose, RXA-10
    performer, RXA-20 completion status (table 0322), RXA-21 action code D -> entered-in-error."""
    rxa = admin.rxa
    medication = required_code(rxa, 5, "administered code", msg, ctx)
    start = required_time(rxa, 3, "start of administration", msg, ctx)
    end = dt.datetime_(rxa.field(4).rep(1), ctx, loc(rxa, 4, msg))
    status = _ADMINISTRATION_STATUS.get(dt.c(rxa.field(20).rep(1), 1).upper(), "completed")
    if dt.c(rxa.field(21).rep(1), 1).upper() == "D":
        status = "entered-in-error"
    amount = dt.c(rxa.field(6).rep(1), 1)
    performer = [
        {"actor": who}
        for who in (practitioner_ref(r, msg, ctx, out) for r in dt.reps(rxa.field(10)))
        if who
    ]
    effective: JSON = (
        {"effectivePeriod": {"start": start, "end": end}}
        if end and end != start
        else {"effectiveDateTime": start}
    )
    resource = {
        "resourceType": "MedicationAdministration",
        "id": ids.medication_administration(
            key,
            rxa.field(1).value.strip(),
            rxa.field(2).value.strip(),
            dt.c(rxa.field(3).rep(1), 1),
        ),
        "status": status,
        "statusReason": [dt.cwe(rxa.field(18).rep(1), ctx)] if status == "not-done" else None,
        "medicationCodeableConcept": medication,
        "subject": ref(patient_reference),
        "context": ref(encounter_reference) if encounter_reference else None,
        **effective,
        "performer": performer,
        "supportingInformation": [ref(a) for a in answers],
        "request": ref(request),
        "note": notes(group.notes) if group.give is None else None,
        "dosage": {
            **_route(admin.rxrs, ctx),
            "dose": dt.quantity(amount, rxa.field(7).rep(1), loc(rxa, 6, msg))
            if amount and amount != "999"
            else None,
        },
    }
    return out.add(dt.prune(resource))
