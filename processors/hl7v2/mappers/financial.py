"""Financial messages: BAR^P01/P02/P12 and DFT^P03/P11 -> Account, ChargeItem, Coverage.

Account: PID-18 patient account number (the IG's PID[Account] map), else PV1-19 visit number;
status active, inactive on a purge (BAR^P02), guarantors from GT1 (mappers/insurance.py, the
Account builder ADT uses too); coverage from IN1 (mappers/coverage.py). A BAR without either is
refused (the account is what it is about); a DFT without either still gives its ChargeItems,
without an account.
ChargeItem per FT1 (DFT): FT1-7 transaction code -> code (required), FT1-4 -> occurrence,
FT1-5 -> enteredDate, FT1-10 -> quantity, FT1-11 extended amount -> priceOverride, FT1-20
performed by -> performer; the Account it is booked on. PV1 -> Encounter, DG1 -> Condition,
PR1 -> Procedure (visit.visit_resources).
A DFT's COMMON_ORDER groups (ORC/OBR, OBX) -> ServiceRequest and Observation as in orders;
an OBX of an order without placer or filler number is kept as an Observation of the message.
"""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from ..timestamps import to_datetime
from .common import JSON, Output, loc, patient_ref, practitioner_ref, ref, require, required_code
from .coverage import coverages
from .insurance import account
from .observations import observation
from .orders import map_order, order_groups
from .requests import order_numbers
from .visit import visit_resources

TRIGGERS: dict[str, frozenset[str]] = {
    "BAR": frozenset({"P01", "P02", "P12"}),
    "DFT": frozenset({"P03", "P11"}),
}
CHARGE_ITEM_CODE = "http://terminology.hl7.org/CodeSystem/v2-0132"


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = visit_resources(msg, patient_reference, ctx, out).encounter
    coverage_refs = coverages(msg, patient_reference, ctx, out)
    account_reference = _account(msg, patient_reference, coverage_refs, ctx, out)
    orders, _ = order_groups(msg)
    for n, order in enumerate(orders, 1):
        placer, filler = order_numbers(order.orc, order.detail)
        if placer[0] or (filler[0] and order.detail is not None and order.detail.name == "RXO"):
            map_order(msg, order, patient_reference, encounter_reference, ctx, out)
            continue
        for obx, obx_notes in order.results:
            observation(
                msg, obx, obx_notes, f"message|{msg.control_id}|order|{n}", None,
                patient_reference, encounter_reference, [], ctx, out, category=None,
            )  # fmt: skip
    for n, ft1 in enumerate(msg.segments("FT1"), 1):
        _charge_item(
            msg, ft1, n, account_reference, patient_reference, encounter_reference, ctx, out
        )
    return out.resources()


def _account(
    msg: ParsedMessage,
    patient_reference: str,
    coverage_references: list[str],
    ctx: MappingContext,
    out: Output,
) -> str | None:
    """The Account of PID-18, else PV1-19 (insurance.account); inactive on a purge (P02)."""
    reference = account(
        msg,
        require(msg, "PID"),
        patient_reference,
        ctx,
        out,
        status="inactive" if msg.message_type[1] == "P02" else "active",
        coverage_references=coverage_references,
        visit_number_fallback=True,
    )
    if reference is None and msg.message_type[0] == "BAR":
        raise MappingError(
            "PID-18", "a financial message needs the patient account number (PID-18 or PV1-19)"
        )
    return reference


def _money(rep_value: str, currency: str, location: str) -> JSON:
    return dt.prune({"value": dt.decimal(rep_value, location), "currency": currency.upper()})


def _charge_item(
    msg: ParsedMessage,
    ft1: Segment,
    nth: int,
    account_reference: str | None,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    code = required_code(ft1, 7, "transaction code", msg, ctx, "0132")
    when = ft1.field(4).rep(1)  # DR: start ^ end
    start = dt.datetime_(when, ctx, loc(ft1, 4, msg))
    end = to_datetime(dt.c(when, 2), ctx.zone, loc(ft1, 4, msg)) if dt.c(when, 2) else None
    quantity = dt.c(ft1.field(10).rep(1), 1)
    amount = ft1.field(11).rep(1)
    performer = [
        {"actor": who}
        for who in (practitioner_ref(r, msg, ctx, out) for r in dt.reps(ft1.field(20)))
        if who
    ]
    # FT1-2 transaction id, else FT1-1 set id, else the FT1's place in the message
    transaction = dt.c(ft1.field(2).rep(1), 1) or ft1.field(1).value.strip() or str(nth)
    resource = {
        "resourceType": "ChargeItem",
        "id": ids.charge_item(
            account_reference.split("/")[1] if account_reference else patient_reference,
            transaction,
        ),
        "identifier": [{"value": dt.c(ft1.field(2).rep(1), 1)}],
        "status": "billable",
        "code": code,
        "subject": ref(patient_reference),
        "context": ref(encounter_reference) if encounter_reference else None,
        "occurrencePeriod": {"start": start, "end": end} if end else None,
        "occurrenceDateTime": start if not end else None,
        "performer": performer,
        "quantity": {"value": dt.decimal(quantity, loc(ft1, 10, msg))} if quantity else None,
        # FT1-11 CP: CP-1 price is MO (quantity & denomination)
        "priceOverride": _money(dt.c(amount, 1, 1), dt.c(amount, 1, 2), loc(ft1, 11, msg))
        if dt.c(amount, 1, 1)
        else None,
        "enteredDate": dt.datetime_(ft1.field(5).rep(1), ctx, loc(ft1, 5, msg)),
        "account": [ref(account_reference)] if account_reference else None,
    }
    out.add(dt.prune(resource))
