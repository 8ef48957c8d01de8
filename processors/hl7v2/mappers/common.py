"""Segment mappers shared by the message families: PID, PV1, NK1, AL1, DG1, XCN, HD, PL.

Every function is pure; the resources are plain dicts. `Output` collects them once each (a
practitioner named in PV1-7 and PV1-17 is one resource) in the order they were first met.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.hl7v2.patient import choose, sending_authority

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Repetition, Segment
from ..timestamps import to_date
from ..tolerance import dropped

JSON = dict[str, Any]
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"


class Output:
    """The resources of one message, unique by type and id, in first-seen order."""

    def __init__(self) -> None:
        self._items: dict[str, JSON] = {}

    def add(self, resource: JSON) -> str:
        ref = f"{resource['resourceType']}/{resource['id']}"
        self._items.setdefault(ref, resource)
        return ref

    def get(self, reference: str) -> JSON:
        """The resource added under `reference` (ResourceType/id)."""
        return self._items[reference]

    def resources(self) -> list[JSON]:
        return list(self._items.values())


def ref(reference: str, display: str = "") -> JSON:
    return {"reference": reference, "display": display} if display else {"reference": reference}


def loc(seg: Segment, field: int, msg: ParsedMessage | None = None) -> str:
    """An HL7 location for errors: PID-3, or OBX[2]-5 when the segment repeats."""
    same = msg.segments(seg.name) if msg is not None else ()
    if len(same) > 1:
        return f"{seg.name}[{same.index(seg) + 1}]-{field}"
    return f"{seg.name}-{field}"


def require(msg: ParsedMessage, name: str) -> Segment:
    seg = msg.segment(name)
    if seg is None:
        raise MappingError(name, f"the {name} segment is required and missing")
    return seg


def required_code(
    seg: Segment, field: int, what: str, msg: ParsedMessage, ctx: MappingContext, table: str = ""
) -> JSON:
    """A required coded field (CWE/CE/CNE, first repetition) -> CodeableConcept; `table`
    names the HL7 table of a code sent without a system."""
    code = dt.cwe(seg.field(field).rep(1), ctx, table)
    if code is None:
        raise MappingError(loc(seg, field, msg), f"{seg.name}-{field} ({what}) is required")
    return code


def required_time(
    seg: Segment, field: int, what: str, msg: ParsedMessage, ctx: MappingContext
) -> str | None:
    """A required TS/DTM field -> FHIR dateTime."""
    rep = seg.field(field).rep(1)
    if not dt.c(rep, 1):
        raise MappingError(loc(seg, field, msg), f"{seg.name}-{field} ({what}) is required")
    return dt.datetime_(rep, ctx, loc(seg, field, msg))


def result_status(
    seg: Segment, field: int, statuses: dict[str, str], table: str, msg: ParsedMessage
) -> str:
    """A result status code (OBX-11, OBR-25) -> its FHIR status via `statuses` (HL7 `table`)."""
    code = dt.c(seg.field(field).rep(1), 1).upper()
    status = statuses.get(code)
    if status is None:
        raise MappingError(loc(seg, field, msg), f"result status {code!r} is not in table {table}")
    return status


def sending_facility(msg: ParsedMessage) -> str:
    """MSH-4 namespace (or universal id): the implied authority of unqualified identifiers."""
    return sending_authority(msg.msh.fields, msg.encoding)  # the contract's rule, as the edge's


def message_time(msg: ParsedMessage, ctx: MappingContext) -> str | None:
    """EVN-2 recorded date/time, else MSH-7, as a FHIR dateTime."""
    evn = msg.segment("EVN")
    if evn is not None and dt.c(evn.field(2).rep(1), 1):
        return dt.datetime_(evn.field(2).rep(1), ctx, "EVN-2")
    if dt.c(msg.msh.field(7).rep(1), 1):
        return dt.datetime_(msg.msh.field(7).rep(1), ctx, "MSH-7")
    return None


# --- Patient -----------------------------------------------------------------------------


def patient_key(reps: list[Repetition], ctx: MappingContext, authority: str) -> tuple[str, str]:
    """(system, value) of the identifier a Patient id derives from: the HL7 v2 contract's
    choice (schemas.hl7v2.patient), the one the edge keys the message by."""
    chosen = choose([r.raw for r in reps], reps[0].encoding, authority) if reps else None
    if chosen is None:
        raise MappingError("PID-3", "no patient identifier")
    return chosen.system(ctx.authority_system), chosen.value


def patient(msg: ParsedMessage, pid: Segment, ctx: MappingContext) -> JSON:
    """PID -> Patient, id from PID-3's first MR identifier (else its first identifier)."""
    authority = sending_facility(msg)
    id_reps = dt.reps(pid.field(3))
    if not id_reps:
        raise MappingError(loc(pid, 3, msg), "PID-3 (patient identifier list) is required")
    system, value = patient_key(id_reps, ctx, authority)
    identifiers = patient_identifiers(msg, pid, ctx, authority)
    resource: JSON = {
        "resourceType": "Patient",
        "id": ids.patient(system, value),
        "identifier": identifiers,
        "active": True,
        "name": patient_names(dt.reps(pid.field(5))),
        "telecom": [t for t in (dt.xtn(r, "home") for r in dt.reps(pid.field(13))) if t]
        + [t for t in (dt.xtn(r, "work") for r in dt.reps(pid.field(14))) if t],
        "gender": dt.gender(pid.field(8).value),
        "birthDate": dt.date_(pid.field(7).rep(1), loc(pid, 7, msg)),
        "address": [a for a in (dt.xad(r) for r in dt.reps(pid.field(11))) if a],
        "maritalStatus": dt.marital_status(pid.field(16).rep(1)),
    }
    for nte in trailing(msg, pid, skip=frozenset({"PD1"})):
        # FHIR Patient has no note: the comment is not lost silently, the sender is told.
        dropped(msg, loc(nte, 3, msg), "a patient note (NTE after PID) has no place in Patient")
    race = dt.race_extension(dt.reps(pid.field(10)), ctx)
    if race:
        resource["extension"] = [race]
    death_time = dt.c(pid.field(29).rep(1), 1)
    if death_time:
        resource["deceasedDateTime"] = dt.datetime_(pid.field(29).rep(1), ctx, loc(pid, 29, msg))
    elif dt.c(pid.field(30).rep(1), 1) in ("Y", "N"):
        resource["deceasedBoolean"] = dt.c(pid.field(30).rep(1), 1) == "Y"
    order = dt.c(pid.field(25).rep(1), 1)
    if order.isdigit():
        resource["multipleBirthInteger"] = int(order)
    elif dt.c(pid.field(24).rep(1), 1) in ("Y", "N"):
        resource["multipleBirthBoolean"] = dt.c(pid.field(24).rep(1), 1) == "Y"
    return dt.prune(resource)


_DRIVERS_LICENSE = {"coding": [{"system": vocab.V2 + "0203", "code": "DL"}]}


def _date_or_none(value: str, location: str) -> str | None:
    return to_date(value, location) if value else None


def patient_identifiers(
    msg: ParsedMessage, pid: Segment, ctx: MappingContext, authority: str
) -> list[JSON]:
    """PID-3 (the id key), PID-2 external id, PID-4 alternate ids, PID-19 SSN, PID-20 driver's
    license (DLN-1 number, DLN-2 issuing state as assigner, DLN-3 expiration as period end)."""
    reps = [*dt.reps(pid.field(3)), *dt.reps(pid.field(2)), *dt.reps(pid.field(4))]
    identifiers = [i for i in (dt.cx(r, ctx, authority) for r in reps) if i]
    ssn = dt.c(pid.field(19).rep(1), 1)
    if ssn:
        identifiers.append({"system": "http://hl7.org/fhir/sid/us-ssn", "value": ssn})
    for dln in dt.reps(pid.field(20)):
        number = dt.c(dln, 1)
        if number:
            state = dt.c(dln, 2)
            identifiers.append(
                dt.prune(
                    {
                        "type": _DRIVERS_LICENSE,
                        "value": number,
                        "assigner": {"display": state} if state else None,
                        "period": {"end": _date_or_none(dt.c(dln, 3), loc(pid, 20, msg))},
                    }
                )
            )
    return identifiers


def patient_names(reps: list[Repetition]) -> list[JSON]:
    """XPN -> HumanName, and XPN-15 "called by" as a name of its own with use nickname (IG)."""
    names: list[JSON] = []
    for rep in reps:
        name = dt.xpn(rep)
        if name:
            names.append(name)
        called_by = dt.c(rep, 15)
        if called_by:
            names.append({"use": "nickname", "given": [called_by]})
    return names


def patient_ref(msg: ParsedMessage, ctx: MappingContext, out: Output) -> str:
    """Map the message's PID (required) and return the reference to its Patient."""
    return out.add(patient(msg, require(msg, "PID"), ctx))


# --- Practitioner, Organization, Location ---------------------------------------------------


def practitioner(rep: Repetition, ctx: MappingContext, authority: str) -> JSON | None:
    """XCN -> Practitioner (id from XCN-1 + XCN-9, the sending facility when XCN-9 is empty)."""
    ident = dt.xcn_identifier(rep, ctx, authority)
    if ident is None:
        return None
    return dt.prune(
        {
            "resourceType": "Practitioner",
            "id": ids.practitioner(ident["system"], ident["value"]),
            "identifier": [ident],
            "name": [dt.xcn_name(rep)],
        }
    )


def practitioner_ref(
    rep: Repetition, msg: ParsedMessage, ctx: MappingContext, out: Output
) -> JSON | None:
    """A Reference to the XCN's Practitioner (added to `out`), or a display-only reference."""
    resource = practitioner(rep, ctx, sending_facility(msg))
    display = _display_name(rep)
    if resource is not None:
        return ref(out.add(resource), display)
    return {"display": display} if display else None


def _display_name(rep: Repetition) -> str:
    parts = [dt.c(rep, 6), dt.c(rep, 3), dt.c(rep, 4), dt.c(rep, 2, 1), dt.c(rep, 5)]
    return " ".join(p for p in parts if p)


def organization(rep: Repetition, ctx: MappingContext) -> JSON | None:
    """HD (MSH-4 and the like) -> Organization, id from the namespace / universal id."""
    ns, uid, utype = dt.c(rep, 1), dt.c(rep, 2), dt.c(rep, 3)
    if not (ns or uid):
        return None
    system = ctx.identifier_system_base + "organization"
    value = ns
    if uid:
        system, value = "urn:ietf:rfc:3986", dt.hd_system("", uid, utype, ctx)
    return dt.prune(
        {
            "resourceType": "Organization",
            "id": ids.organization(system, value),
            "identifier": [{"system": system, "value": value}],
            "active": True,
            "name": ns or uid,
        }
    )


def location_ref(rep: Repetition, ctx: MappingContext, out: Output) -> str | None:
    facility, poc, room, bed = dt.pl_parts(rep)
    resource = dt.pl_location(rep, ctx, ids.location(facility, poc, room, bed))
    return out.add(resource) if resource else None


# --- Encounter ----------------------------------------------------------------------------


def encounter_id(
    msg: ParsedMessage,
    pv1: Segment,
    patient_id: str,
    ctx: MappingContext,
    *,
    admission_event: bool = False,
) -> str | None:
    """From PV1-19 visit number (+ authority), else patient + PV1-44 admit time, so that an
    A08 without a visit number lands on the A01's encounter. Only an event that is the
    admission itself (A01, A04, A05, A14) may take its event time (EVN-6, else EVN-2) for the
    missing admit time; any other message without PV1-19 and PV1-44 names no encounter
    (None) rather than a second one keyed by its own event time."""
    visit = dt.cx(pv1.field(19).rep(1), ctx, sending_facility(msg))
    if visit is not None:
        return ids.encounter_by_visit(visit.get("system", ""), visit["value"])
    admit = dt.c(pv1.field(44).rep(1), 1)
    evn = msg.segment("EVN")
    if not admit and admission_event and evn is not None:
        admit = dt.c(evn.field(6).rep(1), 1) or dt.c(evn.field(2).rep(1), 1)
    if not admit:
        return None
    return ids.encounter_by_admit(patient_id, admit)


def status_from_visit(pv1: Segment) -> str:
    """Encounter.status when the trigger event does not convey it (A08 and the like): finished
    once PV1-45 discharge time is sent, else unknown, as the IG's table 0003 map says for A08
    (an admit time alone does not tell planned from in-progress)."""
    return "finished" if dt.c(pv1.field(45).rep(1), 1) else "unknown"


_PARTICIPANTS = (
    (7, "ATND", "attender"),
    (8, "REF", "referrer"),
    (9, "CON", "consultant"),
    (17, "ADM", "admitter"),
)


def encounter(
    msg: ParsedMessage,
    pv1: Segment,
    patient_reference: str,
    status: str,
    ctx: MappingContext,
    out: Output,
    *,
    prior_location: bool = False,
    keep_end: bool = True,
    admission_event: bool = False,
) -> str | None:
    """PV1 -> Encounter with `status` (decided by the trigger event). None without an id key."""
    eid = encounter_id(
        msg, pv1, patient_reference.split("/")[1], ctx, admission_event=admission_event
    )
    if eid is None:
        return None
    locations: list[JSON] = []
    here = location_ref(pv1.field(3).rep(1), ctx, out)
    if here:
        done = status in ("finished", "cancelled")
        locations.append({"location": ref(here), "status": "completed" if done else "active"})
    if prior_location:
        before = location_ref(pv1.field(6).rep(1), ctx, out)
        if before and before != here:
            locations.append({"location": ref(before), "status": "completed"})
    participants: list[JSON] = []
    for field, code, display in _PARTICIPANTS:
        for rep in dt.reps(pv1.field(field)):
            who = practitioner_ref(rep, msg, ctx, out)
            if who:
                participants.append(
                    {
                        "type": [
                            {
                                "coding": [
                                    {"system": PARTICIPATION, "code": code, "display": display}
                                ]
                            }
                        ],
                        "individual": who,
                    }
                )
    start = dt.datetime_(pv1.field(44).rep(1), ctx, loc(pv1, 44, msg))
    end = dt.datetime_(pv1.field(45).rep(1), ctx, loc(pv1, 45, msg)) if keep_end else None
    service = dt.c(pv1.field(10).rep(1), 1)
    admit_source = dt.c(pv1.field(14).rep(1), 1)
    resource = {
        "resourceType": "Encounter",
        "id": eid,
        "identifier": [dt.cx(pv1.field(19).rep(1), ctx, sending_facility(msg))],
        "status": status,
        "class": dt.encounter_class(pv1.field(2).value),
        "serviceType": dt.table_concept(service, "0069") if service else None,
        "subject": ref(patient_reference),
        "participant": participants,
        "period": {"start": start, "end": end},
        "hospitalization": {
            "admitSource": dt.table_concept(admit_source, "0023") if admit_source else None,
            "dischargeDisposition": dt.discharge_disposition(pv1.field(36).value),
        },
        "location": locations,
    }
    return out.add(dt.prune(resource))


# --- NK1, AL1, DG1 ------------------------------------------------------------------------


def related_persons(
    msg: ParsedMessage, patient_reference: str, ctx: MappingContext, out: Output
) -> None:
    """NK1 -> RelatedPerson, id from the patient and NK1-1 set id."""
    pid = patient_reference.split("/")[1]
    for n, nk1 in enumerate(msg.segments("NK1"), 1):
        set_id = nk1.field(1).value.strip() or str(n)
        resource = {
            "resourceType": "RelatedPerson",
            "id": ids.related_person(pid, set_id),
            "active": True,
            "patient": ref(patient_reference),
            "relationship": [dt.relationship(r, ctx) for r in dt.reps(nk1.field(3))],
            "name": [dt.xpn(r) for r in dt.reps(nk1.field(2))],
            "telecom": [dt.xtn(r, "home") for r in dt.reps(nk1.field(5))]
            + [dt.xtn(r, "work") for r in dt.reps(nk1.field(6))],
            "address": [dt.xad(r) for r in dt.reps(nk1.field(4))],
        }
        out.add(dt.prune(resource))


_ALLERGY_CATEGORY = {
    "DA": "medication",
    "FA": "food",
    "EA": "environment",
    "AA": "environment",
    "PA": "environment",
    "LA": "environment",
}
_ALLERGY_CRITICALITY = {"SV": "high", "MO": "low", "MI": "low", "U": "unable-to-assess"}
ALLERGY_CLINICAL = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"


def allergies(
    msg: ParsedMessage,
    patient_reference: str,
    ctx: MappingContext,
    out: Output,
    *,
    segment: str = "AL1",
) -> None:
    """AL1 (or IAM, ADT^A60) -> AllergyIntolerance, id from the patient and the allergen code.
    Fields 2-5 are the same in both; onset is AL1-6 or IAM-11, and an IAM-6 action code D
    (delete) makes the allergy inactive."""
    pid = patient_reference.split("/")[1]
    onset_field = 11 if segment == "IAM" else 6
    for al1 in msg.segments(segment):
        code = required_code(al1, 3, "allergen", msg, ctx)
        deleted = segment == "IAM" and dt.c(al1.field(6).rep(1), 1).upper() == "D"
        first = code.get("coding", [{}])[0]
        category = _ALLERGY_CATEGORY.get(dt.c(al1.field(2).rep(1), 1).upper())
        reactions = [{"manifestation": [{"text": r.value.strip()}]} for r in dt.reps(al1.field(5))]
        resource = {
            "resourceType": "AllergyIntolerance",
            "id": ids.allergy(
                pid, first.get("system", ""), first.get("code", code.get("text", ""))
            ),
            "clinicalStatus": {
                "coding": [
                    {"system": ALLERGY_CLINICAL, "code": "inactive" if deleted else "active"}
                ]
            },
            "category": [category] if category else None,
            "criticality": _ALLERGY_CRITICALITY.get(dt.c(al1.field(4).rep(1), 1).upper()),
            "code": code,
            "patient": ref(patient_reference),
            "onsetDateTime": dt.date_(al1.field(onset_field).rep(1), loc(al1, onset_field, msg)),
            "reaction": reactions,
            # ADT_A60's adverse reaction group: IAM, NTE*, IAR*; AL1 has no notes.
            "note": notes(trailing(msg, al1, skip=frozenset({"IAR"})))
            if segment == "IAM"
            else None,
        }
        out.add(dt.prune(resource))


_DIAGNOSIS_VERIFICATION = {"F": "confirmed", "W": "provisional", "A": "provisional"}
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def conditions(
    msg: ParsedMessage,
    patient_reference: str,
    encounter_reference: str | None,
    ctx: MappingContext,
    out: Output,
) -> list[str]:
    """DG1 -> Condition (encounter-diagnosis), id from the patient and DG1-3 code; returns
    their references in order."""
    pid = patient_reference.split("/")[1]
    references = []
    for dg1 in msg.segments("DG1"):
        code = required_code(dg1, 3, "diagnosis code", msg, ctx)
        first = code.get("coding", [{}])[0]
        verification = _DIAGNOSIS_VERIFICATION.get(dt.c(dg1.field(6).rep(1), 1).upper())
        resource = {
            "resourceType": "Condition",
            "id": ids.condition(
                pid, first.get("system", ""), first.get("code", code.get("text", ""))
            ),
            "verificationStatus": {
                "coding": [{"system": CONDITION_VERIFICATION, "code": verification}]
            }
            if verification
            else None,
            "category": [
                {
                    "coding": [
                        {
                            "system": CONDITION_CATEGORY,
                            "code": "encounter-diagnosis",
                            "display": "Encounter Diagnosis",
                        }
                    ]
                }
            ],
            "code": code,
            "subject": ref(patient_reference),
            "encounter": ref(encounter_reference) if encounter_reference else None,
            "onsetDateTime": dt.datetime_(dg1.field(5).rep(1), ctx, loc(dg1, 5, msg)),
        }
        references.append(out.add(dt.prune(resource)))
    return references


def trailing(msg: ParsedMessage, seg: Segment, skip: frozenset[str] = frozenset()) -> list[Segment]:
    """The NTE segments right after `seg` (past any segment named in `skip`): its notes."""
    found = []
    for after in msg.segment_list[seg.index + 1 :]:
        if after.name == "NTE":
            found.append(after)
        elif after.name not in skip:
            break
    return found


def notes(segments: Iterable[Segment]) -> list[JSON]:
    """NTE-3 comments -> Annotation list."""
    out = []
    for nte in segments:
        text = "\n".join(r.value for r in nte.field(3).repetitions).strip()
        if text:
            out.append({"text": text})
    return out
