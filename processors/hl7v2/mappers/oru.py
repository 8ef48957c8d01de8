"""ORU^R01 -> DiagnosticReport (OBR), Observation (OBX), Specimen (SPM), and the Patient."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import (
    JSON,
    Output,
    loc,
    notes,
    organization,
    patient_ref,
    ref,
)
from .visit import visit_resources

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"


@dataclass
class _Order:
    obr: Segment
    notes: list[Segment] = field(default_factory=list)
    results: list[tuple[Segment, list[Segment]]] = field(default_factory=list)
    specimens: list[Segment] = field(default_factory=list)


def _orders(msg: ParsedMessage) -> list[_Order]:
    orders: list[_Order] = []
    for seg in msg.segments():
        if seg.name == "OBR":
            orders.append(_Order(seg))
        elif not orders:
            if seg.name in ("OBX", "SPM"):
                raise MappingError(loc(seg, 1, msg), f"{seg.name} before any OBR")
        elif seg.name == "OBX":
            orders[-1].results.append((seg, []))
        elif seg.name == "NTE":
            if orders[-1].results:
                orders[-1].results[-1][1].append(seg)
            else:
                orders[-1].notes.append(seg)
        elif seg.name == "SPM":
            orders[-1].specimens.append(seg)
    return orders


def order_key(obr: Segment) -> tuple[str, JSON | None, JSON | None]:
    """(id key, placer identifier, filler identifier) of an OBR: filler OBR-3, else placer OBR-2."""
    placer = obr.field(2).rep(1)
    filler = obr.field(3).rep(1)
    p = (dt.c(placer, 1), dt.c(placer, 2))
    f = (dt.c(filler, 1), dt.c(filler, 2))
    if f[0]:
        return "filler|" + "|".join(f), _ident(p, "PLAC"), _ident(f, "FILL")
    if p[0]:
        return "placer|" + "|".join(p), _ident(p, "PLAC"), None
    raise MappingError("OBR-3", "an OBR needs a filler (OBR-3) or placer (OBR-2) order number")


def _ident(parts: tuple[str, str], kind: str) -> JSON | None:
    value, namespace = parts
    if not value:
        return None
    ident: JSON = {
        "type": {"coding": [{"system": vocab.V2 + "0203", "code": kind}]},
        "value": value,
    }
    if namespace:
        ident["system"] = "urn:carelog:sid:" + namespace
    return ident


def placer_request_id(obr_or_orc: Segment, field_no: int) -> str | None:
    rep = obr_or_orc.field(field_no).rep(1)
    value, ns = dt.c(rep, 1), dt.c(rep, 2)
    return ids.service_request(f"{value}|{ns}") if value else None


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = visit_resources(msg, patient_reference, ctx, out)
    lab = organization(msg.msh.field(4).rep(1), ctx)
    lab_reference = out.add(lab) if lab else None
    orders = _orders(msg)
    if not orders:
        raise MappingError("OBR", "an ORU^R01 needs at least one OBR")
    for order in orders:
        _report(msg, order, patient_reference, encounter_reference, lab_reference, ctx, out)
    return out.resources()


def _report(
    msg: ParsedMessage,
    order: _Order,
    patient_reference: str,
    encounter_reference: str | None,
    lab_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    obr = order.obr
    key, placer, filler = order_key(obr)
    code = dt.cwe(obr.field(4).rep(1), ctx)
    if code is None:
        raise MappingError(loc(obr, 4, msg), "OBR-4 (universal service identifier) is required")
    effective = dt.datetime_(obr.field(7).rep(1), ctx, loc(obr, 7, msg))
    specimen_refs = [_specimen(msg, spm, patient_reference, ctx, out) for spm in order.specimens]
    result_refs = []
    for obx, obx_notes in order.results:
        result_refs.append(
            _observation(
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
    status_code = dt.c(obr.field(25).rep(1), 1).upper()
    status = vocab.REPORT_STATUS.get(status_code)
    if status is None:
        raise MappingError(loc(obr, 25, msg), f"result status {status_code!r} is not in table 0123")
    section = dt.c(obr.field(24).rep(1), 1)
    issued = dt.c(obr.field(22).rep(1), 1)
    placer_id = placer_request_id(obr, 2)
    report = {
        "resourceType": "DiagnosticReport",
        "id": ids.diagnostic_report(key),
        "identifier": [i for i in (placer, filler) if i],
        "basedOn": [ref(f"ServiceRequest/{placer_id}")] if placer_id else None,
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


def _observation(
    msg: ParsedMessage,
    obx: Segment,
    obx_notes: list[Segment],
    report_key: str,
    report_effective: str | None,
    patient_reference: str,
    encounter_reference: str | None,
    specimen_refs: list[str],
    ctx: MappingContext,
    out: Output,
) -> str:
    code = dt.cwe(obx.field(3).rep(1), ctx)
    if code is None:
        raise MappingError(loc(obx, 3, msg), "OBX-3 (observation identifier) is required")
    status_code = dt.c(obx.field(11).rep(1), 1).upper()
    status = vocab.OBSERVATION_STATUS.get(status_code)
    if status is None:
        raise MappingError(loc(obx, 11, msg), f"result status {status_code!r} is not in table 0085")
    value_type = dt.c(obx.field(2).rep(1), 1)
    value = None
    if dt.reps(obx.field(5)):
        if not value_type:
            raise MappingError(
                loc(obx, 2, msg), "OBX-2 (value type) is required when OBX-5 is sent"
            )
        value = dt.observation_value(
            value_type, obx.field(5), obx.field(6).rep(1), ctx, loc(obx, 5, msg)
        )
    set_id = obx.field(1).value.strip()
    first = code.get("coding", [{}])[0]
    effective = dt.datetime_(obx.field(14).rep(1), ctx, loc(obx, 14, msg)) or report_effective
    ranges = dt.reference_range(obx.field(7).value)
    if ranges and value and value[0] == "valueQuantity":
        for side in ("low", "high"):
            if side in ranges:
                ranges[side].update(
                    {k: v for k, v in value[1].items() if k in ("unit", "system", "code")}
                )
    observation = {
        "resourceType": "Observation",
        "id": ids.observation(
            report_key, set_id, f"{first.get('system', '')}|{first.get('code', '')}"
        ),
        "status": status,
        "category": [
            {
                "coding": [
                    {"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}
                ]
            }
        ],
        "code": code,
        "subject": ref(patient_reference),
        "encounter": ref(encounter_reference) if encounter_reference else None,
        "effectiveDateTime": effective,
        "interpretation": [dt.interpretation(r.value) for r in dt.reps(obx.field(8))],
        "note": notes(obx_notes),
        "specimen": ref(specimen_refs[0]) if len(specimen_refs) == 1 else None,
        "referenceRange": [ranges] if ranges else None,
    }
    if value is not None:
        observation[value[0]] = value[1]
    return out.add(dt.prune(observation))


def _specimen(
    msg: ParsedMessage, spm: Segment, patient_reference: str, ctx: MappingContext, out: Output
) -> str:
    key = spm.field(2).raw.strip()
    if not key:
        raise MappingError(loc(spm, 2, msg), "SPM-2 (specimen id) is required")
    rep = spm.field(2).rep(1)
    placer, filler = rep.component(1), rep.component(2)
    identifiers = []
    for comp, kind in ((placer, "PLAC"), (filler, "FILL")):
        if dt.text(comp.sub(1)):
            identifiers.append(_ident((dt.text(comp.sub(1)), dt.text(comp.sub(2))), kind))
    collected = spm.field(17).rep(1)
    specimen = {
        "resourceType": "Specimen",
        "id": ids.specimen(key),
        "identifier": identifiers,
        "type": dt.cwe(spm.field(4).rep(1), ctx, "0487"),
        "subject": ref(patient_reference),
        "receivedTime": dt.datetime_(spm.field(18).rep(1), ctx, loc(spm, 18, msg)),
        "collection": {
            "collectedDateTime": dt.datetime_(collected, ctx, loc(spm, 17, msg)),
            "bodySite": dt.cwe(spm.field(8).rep(1), ctx, "0163"),
        },
    }
    return out.add(dt.prune(specimen))
