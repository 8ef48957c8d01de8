"""ADT -> Patient, Encounter, RelatedPerson, AllergyIntolerance, Condition, Procedure,
Observation, Coverage, Account (and the Practitioners, Locations and Organizations they name).

Each trigger event is one of: a visit event (Encounter.status from the IG's table 0003 map,
ConceptMap table-hl70003-to-encounter-status, and from the event's meaning where the IG is
silent), a person event (no Encounter), a merge / move / change of identifiers (MRG), a link
or unlink of two patients, a swap of two patients' beds, or an allergy update (IAM).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError, StructureError
from ..parser import ParsedMessage, Segment
from .common import (
    JSON,
    Output,
    allergies,
    conditions,
    encounter,
    loc,
    patient,
    patient_key,
    ref,
    related_persons,
    require,
    sending_facility,
    status_from_visit,
)
from .coverage import coverages
from .insurance import account, account_id, account_identifier
from .visit import adt_observations, procedures


@dataclass(frozen=True, slots=True)
class VisitEvent:
    """How a visit trigger sets the Encounter: its status (None: the event does not convey one,
    status_from_visit decides), whether PV1-6 is a prior location now left, whether PV1-45 is
    kept (a cancelled discharge drops it) and whether the event is the admission itself."""

    status: str | None
    prior_location: bool = False
    keep_end: bool = True
    admission: bool = False


VISIT_EVENTS: dict[str, VisitEvent] = {
    "A01": VisitEvent("in-progress", admission=True),  # admit (IG)
    "A02": VisitEvent("in-progress", prior_location=True),  # transfer (IG)
    "A03": VisitEvent("finished"),  # discharge (IG)
    # Register an outpatient: the IG maps A04 to planned (some converters say arrived).
    "A04": VisitEvent("planned", admission=True),
    "A05": VisitEvent("planned", admission=True),  # pre-admit (IG)
    "A06": VisitEvent("in-progress"),  # outpatient -> inpatient
    "A07": VisitEvent("in-progress"),  # inpatient -> outpatient
    "A08": VisitEvent(None),  # update patient information: the IG says unknown
    "A09": VisitEvent("in-progress", prior_location=True),  # patient departing - tracking
    "A10": VisitEvent("in-progress"),  # patient arriving - tracking
    "A11": VisitEvent("cancelled"),  # cancel admit / visit notification (IG)
    "A12": VisitEvent("in-progress"),  # cancel transfer: PV1-3 is the location kept
    "A13": VisitEvent("in-progress", keep_end=False),  # cancel discharge (IG): no end
    "A14": VisitEvent("planned", admission=True),  # pending admit
    "A15": VisitEvent("in-progress"),  # pending transfer: the patient has not moved yet
    "A16": VisitEvent("in-progress"),  # pending discharge: not discharged yet
    "A21": VisitEvent("onleave"),  # leave of absence - out
    "A22": VisitEvent("in-progress"),  # back from leave of absence
    "A23": VisitEvent("entered-in-error"),  # delete a patient record (the visit)
    "A25": VisitEvent("in-progress"),  # cancel pending discharge
    "A26": VisitEvent("in-progress"),  # cancel pending transfer
    "A27": VisitEvent("cancelled"),  # cancel pending admit
    "A32": VisitEvent("in-progress"),  # cancel patient arriving - tracking
    "A33": VisitEvent("in-progress"),  # cancel patient departing - tracking
    "A38": VisitEvent("cancelled"),  # cancel pre-admit
    "A45": VisitEvent(None),  # move visit information: the visit now belongs to PID's patient
    "A50": VisitEvent(None),  # change visit number (MRG-5 -> PV1-19)
    "A51": VisitEvent(None),  # change alternate visit id (PV1-50)
    "A52": VisitEvent("in-progress"),  # cancel leave of absence
    "A53": VisitEvent("onleave"),  # cancel patient returning from leave of absence
    "A54": VisitEvent(None),  # change attending doctor (PV1-7)
    "A55": VisitEvent(None),  # cancel change attending doctor
    "A61": VisitEvent(None),  # change consulting doctor (PV1-9)
    "A62": VisitEvent(None),  # cancel change consulting doctor
    "A60": VisitEvent(None),  # update allergy information (IAM); the PV1 is the current visit
}
# Add, update, delete person information: the Patient without a visit.
PERSON_EVENTS = frozenset({"A28", "A29", "A31"})
# PID/MRG pairs: MRG-1's patient is replaced by PID-3's (merge, move of ids, identifier change).
PATIENT_MERGES = frozenset({"A34", "A36", "A39", "A40", "A47"})
# PID/MRG pairs on accounts: MRG-3's account merged into PID-18's (A35, A41) or moved (A44).
ACCOUNT_MERGES = frozenset({"A35", "A41", "A44"})
LINKS = {"A24": True, "A37": False}  # link / unlink two patients
TRIGGERS: frozenset[str] = frozenset(
    [*VISIT_EVENTS, *PERSON_EVENTS, *PATIENT_MERGES, *ACCOUNT_MERGES, *LINKS, "A17"]
)


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    trigger = msg.message_type[1]
    if trigger not in TRIGGERS:
        raise MappingError("MSH-9", f"ADT^{trigger} is not supported")
    if trigger in PATIENT_MERGES:
        return _merge(msg, ctx)
    if trigger in ACCOUNT_MERGES:
        return _account_merge(msg, ctx, moved=trigger == "A44")
    if trigger in LINKS:
        return _link(msg, ctx, linked=LINKS[trigger])
    if trigger == "A17":
        return _swap(msg, ctx)
    out = Output()
    pid = require(msg, "PID")
    person = patient(msg, pid, ctx)
    if trigger == "A29":  # delete person information: the record stays, inactive
        person["active"] = False
    patient_reference = out.add(person)
    encounter_reference = None
    pv1 = msg.segment("PV1")
    event = VISIT_EVENTS.get(trigger)
    if event is not None and pv1 is not None:
        encounter_reference = _encounter(msg, pv1, patient_reference, event, ctx, out)
    if trigger == "A50" and encounter_reference is not None:
        _keep_prior_visit_number(msg, out.get(encounter_reference), ctx)
    if trigger == "A60":
        allergies(msg, patient_reference, ctx, out, segment="IAM")
        return out.resources()
    related_persons(msg, patient_reference, ctx, out)
    allergies(msg, patient_reference, ctx, out)
    conditions(msg, patient_reference, encounter_reference, ctx, out)
    procedures(msg, patient_reference, encounter_reference, ctx, out)
    adt_observations(msg, patient_reference, encounter_reference, ctx, out)
    coverage_references = coverages(msg, patient_reference, ctx, out)
    account(msg, pid, patient_reference, ctx, out, coverage_references=coverage_references)
    return out.resources()


def _encounter(
    msg: ParsedMessage,
    pv1: Segment,
    patient_reference: str,
    event: VisitEvent,
    ctx: MappingContext,
    out: Output,
) -> str | None:
    return encounter(
        msg,
        pv1,
        patient_reference,
        event.status or status_from_visit(pv1),
        ctx,
        out,
        prior_location=event.prior_location,
        keep_end=event.keep_end,
        admission_event=event.admission,
    )


def _keep_prior_visit_number(msg: ParsedMessage, encounter: JSON, ctx: MappingContext) -> None:
    """A50 (change visit number): MRG-5, the number the visit had, stays an identifier of the
    Encounter with use old, so a search by the former number still finds it."""
    mrg = msg.segment("MRG")
    prior = dt.cx(mrg.field(5).rep(1), ctx, sending_facility(msg)) if mrg is not None else None
    if prior is not None and prior not in encounter.get("identifier", []):
        encounter.setdefault("identifier", []).append({**prior, "use": "old"})


def _pid_pairs(msg: ParsedMessage, second: str) -> list[tuple[Segment, Segment]]:
    """(PID, the `second` segment after it) pairs, in order: PID/MRG groups, PID/PV1 swaps."""
    pairs = []
    current = None
    for seg in msg.segments():
        if seg.name == "PID":
            current = seg
        elif seg.name == second:
            if current is None:
                raise StructureError(loc(seg, 1, msg), f"{second} without a PID before it")
            pairs.append((current, seg))
            current = None
    if not pairs:
        raise MappingError(second, f"this message needs a PID followed by a {second}")
    return pairs


def _merge(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    """A34/A36/A39/A40/A47: each PID/MRG pair -> the survivor (link replaces) and the old record
    (active false, link replaced-by). A47 changes an identifier, and carelog's Patient id
    derives from it, so the old record is replaced by the new one the same way."""
    out = Output()
    authority = sending_facility(msg)
    for pid, mrg in _pid_pairs(msg, "MRG"):
        # A39 (merge person) names the prior person in MRG-4 when MRG-1 is empty.
        old_reps = dt.reps(mrg.field(1)) or dt.reps(mrg.field(4))
        if not old_reps:
            raise MappingError(
                loc(mrg, 1, msg), "MRG-1 (prior patient identifier list) is required"
            )
        survivor = patient(msg, pid, ctx)
        system, value = patient_key(old_reps, ctx, authority)
        old_id = ids.patient(system, value)
        survivor_ref = f"Patient/{survivor['id']}"
        if old_id == survivor["id"]:
            raise MappingError(loc(mrg, 1, msg), "MRG-1 names the surviving patient itself")
        survivor["link"] = [{"other": ref(f"Patient/{old_id}"), "type": "replaces"}]
        out.add(survivor)
        out.add(
            {
                "resourceType": "Patient",
                "id": old_id,
                "identifier": [i for i in (dt.cx(r, ctx, authority) for r in old_reps) if i],
                "active": False,
                "link": [{"other": ref(survivor_ref), "type": "replaced-by"}],
            }
        )
        if dt.c(mrg.field(3).rep(1), 1):  # A36: the account numbers merge too
            _merge_account(msg, pid, mrg, survivor_ref, ctx, out)
    return out.resources()


def _account_merge(msg: ParsedMessage, ctx: MappingContext, *, moved: bool) -> list[JSON]:
    """A35/A41 (merge account) and A44 (move account): each PID/MRG pair -> the Patient and
    the Accounts (see _merge_account)."""
    out = Output()
    for pid, mrg in _pid_pairs(msg, "MRG"):
        patient_reference = out.add(patient(msg, pid, ctx))
        _merge_account(msg, pid, mrg, patient_reference, ctx, out, moved=moved)
    return out.resources()


def _merge_account(
    msg: ParsedMessage,
    pid: Segment,
    mrg: Segment,
    patient_reference: str,
    ctx: MappingContext,
    out: Output,
    *,
    moved: bool = False,
) -> None:
    """Merge: PID-18's Account stays active, MRG-3's becomes inactive (R4's Account has no
    link to its successor). Move (A44): MRG-3's Account now has PID's patient as subject."""
    old = account_identifier(mrg.field(3).rep(1), msg, ctx)
    if old is None:
        raise MappingError(loc(mrg, 3, msg), "MRG-3 (prior patient account number) is required")
    if moved:
        out.add(
            {
                "resourceType": "Account",
                "id": account_id(old),
                "identifier": [old],
                "status": "active",
                "subject": [ref(patient_reference)],
            }
        )
        return
    survivor = account(msg, pid, patient_reference, ctx, out)
    if survivor is None:
        raise MappingError(loc(pid, 18, msg), "PID-18 (the surviving account) is required")
    if account_id(old) != survivor.split("/")[1]:
        out.add(
            {
                "resourceType": "Account",
                "id": account_id(old),
                "identifier": [old],
                "status": "inactive",
                "subject": [ref(patient_reference)],
            }
        )


def _link(msg: ParsedMessage, ctx: MappingContext, *, linked: bool) -> list[JSON]:
    """A24 link / A37 unlink: the two PIDs' Patients, each with (or without) a seealso link
    to the other. The Patient replaces the current one, so unlinking drops the link."""
    pids = msg.segments("PID")
    if len(pids) < 2:
        raise MappingError("PID", "a link or unlink message needs two PID segments")
    first, second = patient(msg, pids[0], ctx), patient(msg, pids[1], ctx)
    if linked:
        first["link"] = [{"other": ref(f"Patient/{second['id']}"), "type": "seealso"}]
        second["link"] = [{"other": ref(f"Patient/{first['id']}"), "type": "seealso"}]
    out = Output()
    out.add(first)
    out.add(second)
    return out.resources()


def _swap(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    """A17 swap patients: two PID/PV1 groups, each Encounter in progress at its new bed."""
    out = Output()
    for pid, pv1 in _pid_pairs(msg, "PV1"):
        patient_reference = out.add(patient(msg, pid, ctx))
        encounter(msg, pv1, patient_reference, "in-progress", ctx, out)
    return out.resources()
