"""Orders: ORM^O01, OML^O21/O33, OMG^O19 -> ServiceRequest per ORC/OBR order (with the Patient,
requester), Specimen per SPM, Observation per OBX (the request's supportingInfo); an order
whose detail is RXO (a pharmacy order in an ORM) -> MedicationRequest (mappers/pharmacy.py).

OML^O33 is specimen-centred: each SPM opens a SPECIMEN group whose orders follow it; in the
other structures an SPM belongs to the order before it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from . import pharmacy, specimens
from .common import JSON, Output, loc, patient_ref
from .observations import observation
from .requests import order_numbers, service_request
from .visit import visit_resources

TRIGGERS: dict[str, frozenset[str]] = {
    "ORM": frozenset({"O01"}),
    "OML": frozenset({"O21", "O33"}),
    "OMG": frozenset({"O19"}),
}
_SPECIMEN_FIRST = frozenset({("OML", "O33")})

Result = tuple[Segment, list[Segment]]


@dataclass
class _Order:
    orc: Segment | None
    detail: Segment | None = None  # OBR, or RXO for a pharmacy order
    notes: list[Segment] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    specimens: list[Segment] = field(default_factory=list)
    rxrs: list[Segment] = field(default_factory=list)


@dataclass
class _SpecimenGroup:
    """An SPM that opens a SPECIMEN group (OML^O33, or before any order) and its own OBX."""

    spm: Segment
    results: list[Result] = field(default_factory=list)


def order_groups(msg: ParsedMessage) -> tuple[list[_Order], list[_SpecimenGroup]]:
    """An ORC opens an order, the OBR (or RXO) that follows belongs to it; an OBR without an
    ORC of its own opens one too. NTE notes go to the OBX before them, else to the order."""
    code, trigger, _ = msg.message_type
    specimen_first = (code, trigger) in _SPECIMEN_FIRST
    orders: list[_Order] = []
    groups: list[_SpecimenGroup] = []
    current: _Order | _SpecimenGroup | None = None
    for seg in msg.segments():
        name = seg.name
        shared = [groups[-1].spm] if groups else []
        if name == "ORC":
            current = _Order(seg, specimens=shared)
            orders.append(current)
        elif name in ("OBR", "RXO"):
            if not isinstance(current, _Order) or current.detail is not None:
                current = _Order(None, specimens=shared)
                orders.append(current)
            current.detail = seg
        elif name == "SPM":
            if specimen_first or not isinstance(current, _Order):
                current = _SpecimenGroup(seg)
                groups.append(current)
            else:
                current.specimens.append(seg)
        elif current is None:
            continue
        elif name == "OBX":
            current.results.append((seg, []))
        elif name == "NTE":
            if current.results:
                current.results[-1][1].append(seg)
            elif isinstance(current, _Order):
                current.notes.append(seg)
        elif name == "RXR" and isinstance(current, _Order):
            current.rxrs.append(seg)
    return orders, groups


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = visit_resources(msg, patient_reference, ctx, out).encounter
    orders, groups = order_groups(msg)
    if not orders:
        raise MappingError("ORC", "an order message needs at least one ORC or OBR")
    for group in groups:  # the specimen's own observations (OML^O33 SPECIMEN group OBX)
        specimen = specimens.from_spm(msg, group.spm, patient_reference, ctx, out)
        for obx, obx_notes in group.results:
            observation(
                msg, obx, obx_notes, f"specimen|{specimens.spm_key(msg, group.spm)}", None,
                patient_reference, encounter_reference, [specimen] if specimen else [], ctx,
                out, category=None,
            )  # fmt: skip
    for order in orders:
        map_order(msg, order, patient_reference, encounter_reference, ctx, out)
    return out.resources()


def map_order(
    msg: ParsedMessage,
    order: _Order,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    """One ORC group -> its ServiceRequest (or MedicationRequest for RXO) and Observations."""
    if order.detail is not None and order.detail.name == "RXO":
        medication = pharmacy.PharmacyOrder(
            order.orc, order.detail, rxrs=order.rxrs, notes=order.notes, results=order.results
        )
        pharmacy.map_group(msg, medication, patient_reference, encounter_reference, ctx, out)
    else:
        _request(msg, order, patient_reference, encounter_reference, ctx, out)


def _request(
    msg: ParsedMessage,
    order: _Order,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    placer, _ = order_numbers(order.orc, order.detail)
    if not placer[0]:
        where = loc(order.orc, 2, msg) if order.orc is not None else "OBR-2"
        raise MappingError(where, "the placer order number (ORC-2 / OBR-2) is required")
    specimen_refs = [
        s
        for s in (
            specimens.from_spm(msg, spm, patient_reference, ctx, out) for spm in order.specimens
        )
        if s is not None
    ]
    answers = [
        observation(
            msg, obx, obx_notes, f"order|{placer[0]}|{placer[1]}", None, patient_reference,
            encounter_reference, specimen_refs, ctx, out, category=None,
        )
        for obx, obx_notes in order.results
    ]  # fmt: skip
    service_request(
        msg, order.orc, order.detail, order.notes, patient_reference, encounter_reference, ctx,
        out, specimens=specimen_refs, supporting_info=answers,
    )  # fmt: skip
