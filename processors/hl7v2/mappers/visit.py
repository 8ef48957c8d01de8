"""The visit a message carries, in every message family: Encounter from PV1, Condition from
DG1, Procedure from PR1 (HL7 v2-to-FHIR IG segment maps PV1[Encounter], DG1[Condition],
PR1[Procedure]), and Observation from OBX in ADT messages (OBX[Observation]).

Results, orders, vaccinations and documents emit the Encounter too: the versioning stage
keeps an Encounter from a message other than ADT create-only (processors/version_policy.py),
so the ADT feed stays the authority on the visit.
"""

from __future__ import annotations

from typing import NamedTuple

from processors.ids import resource_id

from .. import datatypes as dt
from .. import vocab
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import (
    Output,
    conditions,
    encounter,
    loc,
    notes,
    practitioner_ref,
    ref,
    status_from_visit,
)


class Visit(NamedTuple):
    """What visit_resources emitted: the Encounter (None when the PV1 names no visit or there
    is no PV1) and the DG1 Conditions and PR1 Procedures, as references in message order."""

    encounter: str | None
    conditions: list[str]
    procedures: list[str]


def visit_resources(
    msg: ParsedMessage, patient_reference: str, ctx: MappingContext, out: Output
) -> Visit:
    """For a message other than ADT: the Encounter of its PV1 (status from PV1-45, else
    unknown: such a message does not convey it), its DG1 Conditions and PR1 Procedures."""
    pv1 = msg.segment("PV1")
    encounter_reference = None
    if pv1 is not None:
        encounter_reference = encounter(
            msg, pv1, patient_reference, status_from_visit(pv1), ctx, out
        )
    return Visit(
        encounter_reference,
        conditions(msg, patient_reference, encounter_reference, ctx, out),
        procedures(msg, patient_reference, encounter_reference, ctx, out),
    )


def procedures(
    msg: ParsedMessage,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> list[str]:
    """PR1 -> Procedure (status completed: PR1 reports a procedure done, as the IG maps it).
    Id from the patient and PR1-19 procedure identifier, else PR1-3 code and PR1-5 time;
    returns their references in order."""
    patient_id = patient_reference.split("/")[1]
    references = []
    for pr1 in msg.segments("PR1"):
        code = dt.cwe(pr1.field(3).rep(1), ctx, "0088")
        if code is None:
            raise MappingError(loc(pr1, 3, msg), "PR1-3 (procedure code) is required")
        description = dt.c(pr1.field(4).rep(1), 1)
        if description and "text" not in code:
            code["text"] = description
        identifier = dt.ei(pr1.field(19).rep(1), ctx)
        first = code.get("coding", [{}])[0]
        key = (
            ("identifier", identifier.get("system", ""), identifier["value"])
            if identifier
            else (
                "code",
                first.get("system", ""),
                first.get("code", code.get("text", "")),
                dt.c(pr1.field(5).rep(1), 1),
            )
        )
        performers = []
        for field_no in (12, 11):  # procedure practitioner, then the deprecated surgeon
            for rep in dt.reps(pr1.field(field_no)):
                who = practitioner_ref(rep, msg, ctx, out)
                if who:
                    performers.append({"actor": who})
        resource = {
            "resourceType": "Procedure",
            "id": resource_id("Procedure", patient_id, *key),
            "identifier": [identifier] if identifier else None,
            "status": "completed",
            "code": code,
            "subject": ref(patient_reference),
            "encounter": ref(encounter_reference) if encounter_reference else None,
            "performedDateTime": dt.datetime_(pr1.field(5).rep(1), ctx, loc(pr1, 5, msg)),
            "performer": performers,
        }
        references.append(out.add(dt.prune(resource)))
    return references


def adt_observations(
    msg: ParsedMessage,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    """OBX in an ADT message (height, weight, a screening answer) -> Observation. OBX-3 and
    OBX-11 are required as in results; the id is keyed by the visit (else the patient), the
    code and OBX-14, so a later A08 with the same observation updates it."""
    subject_key = encounter_reference or patient_reference
    for obx, obx_notes in _results_with_notes(msg):
        code = dt.cwe(obx.field(3).rep(1), ctx)
        if code is None:
            raise MappingError(loc(obx, 3, msg), "OBX-3 (observation identifier) is required")
        status_code = dt.c(obx.field(11).rep(1), 1).upper()
        status = vocab.OBSERVATION_STATUS.get(status_code)
        if status is None:
            raise MappingError(
                loc(obx, 11, msg), f"result status {status_code!r} is not in table 0085"
            )
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
        first = code.get("coding", [{}])[0]
        observation = {
            "resourceType": "Observation",
            "id": resource_id(
                "Observation",
                subject_key,
                f"{first.get('system', '')}|{first.get('code', code.get('text', ''))}",
                dt.c(obx.field(14).rep(1), 1),
            ),
            "status": status,
            "code": code,
            "subject": ref(patient_reference),
            "encounter": ref(encounter_reference) if encounter_reference else None,
            "effectiveDateTime": dt.datetime_(obx.field(14).rep(1), ctx, loc(obx, 14, msg)),
            "interpretation": [dt.interpretation(r.value) for r in dt.reps(obx.field(8))],
            "note": notes(obx_notes),
        }
        if value is not None:
            observation[value[0]] = value[1]
        out.add(dt.prune(observation))


def _results_with_notes(msg: ParsedMessage) -> list[tuple[Segment, list[Segment]]]:
    """Each OBX with the NTE segments right after it."""
    pairs: list[tuple[Segment, list[Segment]]] = []
    follows_obx = False
    for seg in msg.segments():
        if seg.name == "OBX":
            pairs.append((seg, []))
            follows_obx = True
        elif seg.name == "NTE" and follows_obx:
            pairs[-1][1].append(seg)
        else:
            follows_obx = False
    return pairs
