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
from ..context import MappingContext
from ..parser import ParsedMessage, Segment
from .common import (
    Output,
    conditions,
    encounter,
    loc,
    practitioner_ref,
    ref,
    required_code,
    status_from_visit,
)
from .observations import observation


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
        code = required_code(pr1, 3, "procedure code", msg, ctx, "0088")
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
    """OBX in an ADT message -> Observation (observations.observation, keyed by the visit,
    else the patient; no category: an ADT does not say what kind of observation it is)."""
    visit_key = encounter_reference or patient_reference
    for obx, obx_notes in _results_with_notes(msg):
        observation(
            msg, obx, obx_notes, "", None, patient_reference, encounter_reference, [], ctx,
            out, category=None, visit_key=visit_key,
        )  # fmt: skip


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
