"""PPR^PC1/PC2/PC3 (problem add / update / delete) -> Condition per PRB, category
problem-list-item, with its NTE notes and OBX Observations (Condition.evidence).

PRB-3 problem id (CWE, required) -> code; PRB-4 problem instance id (EI) -> identifier and the
id (without it, the id derives from the patient and PRB-3's code); PRB-7 established -> recordedDate; PRB-9 resolution -> abatementDateTime; PRB-10
classification -> category; PRB-13 confirmation -> verificationStatus; PRB-14 life cycle
status -> clinicalStatus; PRB-16 onset -> onsetDateTime. A delete (PC3, or PRB-1 action code
DE) marks the Condition entered-in-error, without clinicalStatus (FHIR con-5).
"""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import (
    CONDITION_CATEGORY,
    CONDITION_VERIFICATION,
    JSON,
    Output,
    loc,
    notes,
    patient_ref,
    ref,
    required_code,
)
from .observations import observation
from .visit import visit_resources

TRIGGERS: frozenset[str] = frozenset({"PC1", "PC2", "PC3"})
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
# PRB-14 problem life cycle status (user-defined table 0284 in v2.5) -> condition-clinical.
_CLINICAL = {
    "A": "active",
    "ACTIVE": "active",
    "I": "inactive",
    "INACTIVE": "inactive",
    "R": "resolved",
    "RESOLVED": "resolved",
    "RE": "recurrence",
    "RECURRENCE": "recurrence",
    "REL": "relapse",
    "REM": "remission",
}
# PRB-13 problem confirmation status (user-defined) -> condition-ver-status.
_VERIFICATION = {
    "C": "confirmed",
    "CONFIRMED": "confirmed",
    "P": "provisional",
    "PROVISIONAL": "provisional",
    "D": "differential",
    "DIFFERENTIAL": "differential",
    "R": "refuted",
    "REFUTED": "refuted",
    "U": "unconfirmed",
    "UNCONFIRMED": "unconfirmed",
}

Problem = tuple[Segment, list[Segment], list[tuple[Segment, list[Segment]]]]


def _problems(msg: ParsedMessage) -> list[Problem]:
    problems: list[Problem] = []
    for seg in msg.segments():
        if seg.name == "PRB":
            problems.append((seg, [], []))
        elif not problems:
            continue
        elif seg.name == "OBX":
            problems[-1][2].append((seg, []))
        elif seg.name == "NTE":
            results = problems[-1][2]
            (results[-1][1] if results else problems[-1][1]).append(seg)
    return problems


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    encounter_reference = visit_resources(msg, patient_reference, ctx, out).encounter
    problems = _problems(msg)
    if not problems:
        raise MappingError("PRB", "a PPR message needs at least one PRB")
    deleted = msg.message_type[1] == "PC3"
    for prb, prb_notes, results in problems:
        _condition(
            msg, prb, prb_notes, results, deleted, patient_reference, encounter_reference, ctx, out
        )
    return out.resources()


def _condition(
    msg: ParsedMessage,
    prb: Segment,
    prb_notes: list[Segment],
    results: list[tuple[Segment, list[Segment]]],
    deleted: bool,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> None:
    code = required_code(prb, 3, "problem id", msg, ctx)
    instance = dt.ei(prb.field(4).rep(1), ctx)
    if instance is not None:
        key = f"{instance['value']}|{dt.c(prb.field(4).rep(1), 2)}"
    else:  # v2.3 senders often leave PRB-4 empty: the patient's problem with that code
        first = code.get("coding", [{}])[0]
        key = "|".join(
            ("patient", patient_reference, first.get("system", ""), first.get("code", ""))
        )
    evidence = [
        observation(
            msg, obx, obx_notes, f"problem|{key}", None, patient_reference, encounter_reference,
            [], ctx, out, category=None,
        )
        for obx, obx_notes in results
    ]  # fmt: skip
    deleted = deleted or dt.c(prb.field(1).rep(1), 1).upper() == "DE"
    clinical = _CLINICAL.get(dt.c(prb.field(14).rep(1), 1).upper())
    verification = _VERIFICATION.get(dt.c(prb.field(13).rep(1), 1).upper())
    if deleted:
        clinical, verification = None, "entered-in-error"
    categories = [
        {
            "coding": [
                {
                    "system": CONDITION_CATEGORY,
                    "code": "problem-list-item",
                    "display": "Problem List Item",
                }
            ]
        }
    ]
    classification = dt.cwe(prb.field(10).rep(1), ctx)
    if classification is not None:
        categories.append(classification)
    resource = {
        "resourceType": "Condition",
        "id": ids.problem(key),
        "identifier": [instance] if instance else None,
        "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": clinical}]}
        if clinical
        else None,
        "verificationStatus": {"coding": [{"system": CONDITION_VERIFICATION, "code": verification}]}
        if verification
        else None,
        "category": categories,
        "code": code,
        "subject": ref(patient_reference),
        "encounter": ref(encounter_reference) if encounter_reference else None,
        "onsetDateTime": dt.datetime_(prb.field(16).rep(1), ctx, loc(prb, 16, msg)),
        "abatementDateTime": dt.datetime_(prb.field(9).rep(1), ctx, loc(prb, 9, msg)),
        "recordedDate": dt.datetime_(prb.field(7).rep(1), ctx, loc(prb, 7, msg)),
        "evidence": [{"detail": [ref(e) for e in evidence]}] if evidence else None,
        "note": notes(prb_notes),
    }
    out.add(dt.prune(resource))
