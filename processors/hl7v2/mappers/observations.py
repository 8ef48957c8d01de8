"""OBX -> Observation, for every message that carries results or answers (ORU, OUL, ORM, OML,
VXU, ...). OBX-2 ED / RP (encapsulated data, a pointer to it) is a document, not a value:
mappers/attachments.py makes those a DocumentReference.
"""

from __future__ import annotations

from collections.abc import Sequence

from processors.ids import resource_id

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import JSON, Output, loc, notes, ref, required_code, result_status

OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LABORATORY: JSON = {
    "coding": [{"system": OBSERVATION_CATEGORY, "code": "laboratory", "display": "Laboratory"}]
}
ENCAPSULATED_TYPES = frozenset({"ED", "RP"})


def value_type(obx: Segment) -> str:
    return dt.c(obx.field(2).rep(1), 1).upper()


def observation(
    msg: ParsedMessage,
    obx: Segment,
    obx_notes: Sequence[Segment],
    group_key: str,
    group_effective: str | None,
    patient_reference: str,
    encounter_reference: str | None,
    specimen_refs: Sequence[str],
    ctx: MappingContext,
    out: Output,
    *,
    category: JSON | None = LABORATORY,
    part_of: str | None = None,
    visit_key: str | None = None,
) -> str:
    """OBX -> Observation, id from the group it belongs to (a report, an order, an
    immunization), OBX-1 set id and OBX-3 code. An ADT's OBX (height, weight, a screening
    answer) belongs to no group: `visit_key` (the visit, else the patient) keys it with the
    code and OBX-14, so a later A08 repeating the observation updates it."""
    code = required_code(obx, 3, "observation identifier", msg, ctx)
    status = result_status(obx, 11, vocab.OBSERVATION_STATUS, "0085", msg)
    vt = dt.c(obx.field(2).rep(1), 1)
    value = None
    if dt.reps(obx.field(5)):
        if not vt:
            raise MappingError(
                loc(obx, 2, msg), "OBX-2 (value type) is required when OBX-5 is sent"
            )
        value = dt.observation_value(vt, obx.field(5), obx.field(6).rep(1), ctx, loc(obx, 5, msg))
    set_id = obx.field(1).value.strip()
    first = code.get("coding", [{}])[0]
    effective = dt.datetime_(obx.field(14).rep(1), ctx, loc(obx, 14, msg)) or group_effective
    ranges = dt.reference_range(obx.field(7).value)
    if ranges and value and value[0] == "valueQuantity":
        for side in ("low", "high"):
            if side in ranges:
                ranges[side].update(
                    {k: v for k, v in value[1].items() if k in ("unit", "system", "code")}
                )
    resource = {
        "resourceType": "Observation",
        "id": ids.observation(
            group_key, set_id, f"{first.get('system', '')}|{first.get('code', '')}"
        )
        if visit_key is None
        else resource_id(
            "Observation",
            visit_key,
            f"{first.get('system', '')}|{first.get('code', code.get('text', ''))}",
            dt.c(obx.field(14).rep(1), 1),
        ),
        "partOf": [ref(part_of)] if part_of else None,
        "status": status,
        "category": [category] if category else None,
        "code": code,
        "subject": ref(patient_reference),
        "encounter": ref(encounter_reference) if encounter_reference else None,
        "effectiveDateTime": effective,
        "interpretation": [
            i for i in (dt.interpretation(r.value) for r in dt.reps(obx.field(8))) if i
        ],
        "note": notes(obx_notes),
        "specimen": ref(specimen_refs[0]) if len(specimen_refs) == 1 else None,
        "referenceRange": [ranges] if ranges else None,
    }
    if value is not None:
        resource[value[0]] = dt.prune(value[1]) if isinstance(value[1], dict) else value[1]
    # Every nested value above is built clean: only the first level can hold empties.
    return out.add(dt.prune_top(resource))
