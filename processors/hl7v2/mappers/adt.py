"""ADT A01-A08, A11, A13, A28, A31, A40 -> Patient, Encounter, RelatedPerson,
AllergyIntolerance, Condition (and the Practitioners and Locations they name)."""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage
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
)

TRIGGERS = frozenset(
    ["A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A13", "A28", "A31", "A40"]
)

# Encounter.status by trigger; None: the status follows PV1-44/45 (A08 update).
_STATUS: dict[str, str | None] = {
    "A01": "in-progress",  # admit
    "A02": "in-progress",  # transfer
    "A03": "finished",  # discharge
    "A04": "arrived",  # register an outpatient
    "A05": "planned",  # pre-admit
    "A06": "in-progress",  # outpatient -> inpatient
    "A07": "in-progress",  # inpatient -> outpatient
    "A08": None,  # update patient information
    "A11": "cancelled",  # cancel admit / visit notification
    "A13": "in-progress",  # cancel discharge: back in progress, no end
}


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    trigger = msg.message_type[1]
    if trigger not in TRIGGERS:
        raise MappingError("MSH-9", f"ADT^{trigger} is not supported")
    if trigger == "A40":
        return _merge(msg, ctx)
    out = Output()
    patient_reference = out.add(patient(msg, require(msg, "PID"), ctx))
    encounter_reference = None
    pv1 = msg.segment("PV1")
    if trigger in _STATUS and pv1 is not None:
        status = _STATUS[trigger]
        if status is None:
            status = (
                "finished"
                if dt.c(pv1.field(45).rep(1), 1)
                else "in-progress"
                if dt.c(pv1.field(44).rep(1), 1)
                else "unknown"
            )
        encounter_reference = encounter(
            msg,
            pv1,
            patient_reference,
            status,
            ctx,
            out,
            prior_location=trigger == "A02",
            keep_end=trigger != "A13",
        )
    related_persons(msg, patient_reference, ctx, out)
    allergies(msg, patient_reference, ctx, out)
    conditions(msg, patient_reference, encounter_reference, ctx, out)
    return out.resources()


def _merge(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    """A40: each PID/MRG pair -> the survivor (link replaces) and the old record
    (active false, link replaced-by)."""
    out = Output()
    authority = sending_facility(msg)
    pairs = []
    current = None
    for seg in msg.segments():
        if seg.name == "PID":
            current = seg
        elif seg.name == "MRG":
            if current is None:
                raise MappingError(loc(seg, 1, msg), "MRG without a PID before it")
            pairs.append((current, seg))
            current = None
    if not pairs:
        raise MappingError("MRG", "A40 needs a PID followed by an MRG")
    for pid, mrg in pairs:
        old_reps = dt.reps(mrg.field(1))
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
    return out.resources()
