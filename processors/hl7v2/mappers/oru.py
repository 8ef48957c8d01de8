"""Results: ORU^R01/R30 and OUL^R22/R23/R24 -> DiagnosticReport (OBR), the ServiceRequest it is
based on (ORC/OBR), Observation (OBX), DocumentReference (OBX ED/RP), Specimen (SPM, OBR-15).

The message structures differ in where ORC and SPM stand (v2.5.1 ch. 7): ORU puts ORC before
its OBR and SPM inside the order; OUL puts ORC after its OBR, and OUL^R22/R23 open a SPECIMEN
group (SPM, its own OBX) that the orders after it belong to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from processors.ids import order_identifier

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..errors import MappingError, StructureError
from ..parser import ParsedMessage, Segment
from . import specimens
from .attachments import document_reference
from .common import JSON, Output, loc, organization, patient_ref, ref, required_code, result_status
from .observations import ENCAPSULATED_TYPES, observation, value_type
from .requests import service_request
from .visit import visit_resources

DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"
TRIGGERS: dict[str, frozenset[str]] = {
    "ORU": frozenset({"R01", "R30"}),
    "OUL": frozenset({"R22", "R23", "R24"}),
}
_SPECIMEN_FIRST = frozenset({("OUL", "R22"), ("OUL", "R23")})

Result = tuple[Segment, list[Segment]]  # an OBX and the NTEs after it


@dataclass
class _SpecimenGroup:
    spm: Segment
    results: list[Result] = field(default_factory=list)


@dataclass
class _Order:
    obr: Segment
    orc: Segment | None = None
    notes: list[Segment] = field(default_factory=list)
    results: list[Result] = field(default_factory=list)
    specimens: list[Segment] = field(default_factory=list)
    group: _SpecimenGroup | None = None


def _groups(msg: ParsedMessage) -> tuple[list[_Order], list[_SpecimenGroup]]:
    code, trigger, _ = msg.message_type
    specimen_first = (code, trigger) in _SPECIMEN_FIRST
    orc_after_obr = code == "OUL"
    orders: list[_Order] = []
    groups: list[_SpecimenGroup] = []
    current: _Order | _SpecimenGroup | None = None
    pending_orc: Segment | None = None
    for seg in msg.segments():
        name = seg.name
        if name == "OBR":
            group = current.group if isinstance(current, _Order) else current
            current = _Order(seg, orc=pending_orc, group=group)
            pending_orc = None
            orders.append(current)
        elif name == "ORC":
            if orc_after_obr and isinstance(current, _Order) and current.orc is None:
                current.orc = seg
            else:
                pending_orc = seg
        elif name == "SPM":
            if specimen_first:
                current = _SpecimenGroup(seg)
                groups.append(current)
            elif isinstance(current, _Order):
                current.specimens.append(seg)
            else:
                raise StructureError(loc(seg, 1, msg), "SPM before any OBR")
        elif name == "OBX":
            if current is None:
                raise StructureError(loc(seg, 1, msg), "OBX before any OBR")
            current.results.append((seg, []))
        elif name == "NTE" and current is not None:
            if current.results:
                current.results[-1][1].append(seg)
            elif isinstance(current, _Order):
                current.notes.append(seg)
    return orders, groups


def _present(reference: str | None) -> list[str]:
    return [reference] if reference is not None else []


def order_key(obr: Segment, ctx: MappingContext) -> tuple[str, JSON | None, JSON | None]:
    """(id key, placer identifier, filler identifier) of an OBR: filler OBR-3, else placer OBR-2."""
    placer = obr.field(2).rep(1)
    filler = obr.field(3).rep(1)
    p = (dt.c(placer, 1), dt.c(placer, 2))
    f = (dt.c(filler, 1), dt.c(filler, 2))
    if f[0]:
        return (
            "filler|" + "|".join(f),
            order_identifier(p, "PLAC", ctx.authority_system),
            order_identifier(f, "FILL", ctx.authority_system),
        )
    if p[0]:
        return "placer|" + "|".join(p), order_identifier(p, "PLAC", ctx.authority_system), None
    raise MappingError("OBR-3", "an OBR needs a filler (OBR-3) or placer (OBR-2) order number")


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = visit_resources(msg, patient_reference, ctx, out).encounter
    lab = organization(msg.msh.field(4).rep(1), ctx)
    lab_reference = out.add(lab) if lab else None
    orders, groups = _groups(msg)
    if not orders:
        code, trigger, _ = msg.message_type
        raise MappingError("OBR", f"an {code}^{trigger} needs at least one OBR")
    group_specimens = {
        id(g): specimens.from_spm(msg, g.spm, patient_reference, ctx, out) for g in groups
    }
    for g in groups:  # the specimen's own observations (OUL SPECIMEN group OBX)
        for obx, obx_notes in g.results:
            observation(
                msg, obx, obx_notes, f"specimen|{specimens.spm_key(msg, g.spm)}", None,
                patient_reference, encounter_reference, _present(group_specimens[id(g)]), ctx,
                out,
            )  # fmt: skip
    for order in orders:
        shared = _present(group_specimens[id(order.group)]) if order.group is not None else []
        _report(msg, order, shared, patient_reference, encounter_reference, lab_reference, ctx, out)
    return out.resources()


def _report(
    msg: ParsedMessage,
    order: _Order,
    shared_specimens: list[str],
    patient_reference: str,
    encounter_reference: str | None,
    lab_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    obr = order.obr
    key, placer, filler = order_key(obr, ctx)
    code = required_code(obr, 4, "universal service identifier", msg, ctx)
    status = result_status(obr, 25, vocab.REPORT_STATUS, "0123", msg)
    effective = dt.datetime_(obr.field(7).rep(1), ctx, loc(obr, 7, msg))
    specimen_refs = shared_specimens + [
        s
        for s in (
            specimens.from_spm(msg, spm, patient_reference, ctx, out) for spm in order.specimens
        )
        if s is not None
    ]
    if not specimen_refs:
        from_obr = specimens.from_obr15(msg, obr, key, patient_reference, ctx, out)
        specimen_refs = [from_obr] if from_obr else []
    request_reference = service_request(
        msg, order.orc, obr, order.notes, patient_reference, encounter_reference, ctx, out,
        default_status="unknown", specimens=specimen_refs,
    )  # fmt: skip
    report_reference = f"DiagnosticReport/{ids.diagnostic_report(key)}"
    result_refs = []
    for obx, obx_notes in order.results:
        if value_type(obx) in ENCAPSULATED_TYPES:
            related = [r for r in (request_reference, report_reference) if r]
            document_reference(
                msg, obx, key, patient_reference, encounter_reference, ctx, out, related
            )
            continue
        result_refs.append(
            observation(
                msg,
                obx,
                obx_notes,
                key,
                effective,
                patient_reference,
                encounter_reference,
                specimen_refs,
                ctx,
                out,
            )
        )
    section = dt.c(obr.field(24).rep(1), 1)
    issued = dt.c(obr.field(22).rep(1), 1)
    report = {
        "resourceType": "DiagnosticReport",
        "id": ids.diagnostic_report(key),
        "identifier": [i for i in (placer, filler) if i],
        "basedOn": [ref(request_reference)] if request_reference else None,
        "status": status,
        "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": section}]}]
        if section
        else None,
        "code": code,
        "subject": ref(patient_reference),
        "encounter": ref(encounter_reference) if encounter_reference else None,
        "effectiveDateTime": effective,
        "issued": dt.timestamp_instant(issued, ctx, loc(obr, 22, msg)) if issued else None,
        "performer": [ref(lab_reference)] if lab_reference else None,
        "specimen": [ref(s) for s in specimen_refs],
        "result": [ref(r) for r in result_refs],
    }
    out.add(dt.prune(report))
