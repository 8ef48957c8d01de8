"""SIU^S12-S17, S26 -> Appointment (SCH, TQ1, AIS, AIP, AIL) with the Patient, Practitioners, Locations."""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Repetition
from .common import (
    JSON,
    PARTICIPATION,
    Output,
    loc,
    location_ref,
    notes,
    patient_ref,
    practitioner_ref,
    ref,
    require,
)

# The trigger's own status, before SCH-25: cancel (S15), discontinue (S16: the remaining
# occurrences will not happen), delete (S17: entered in error), no-show (S26).
TRIGGER_STATUS = {
    "S15": "cancelled",
    "S16": "cancelled",
    "S17": "entered-in-error",
    "S26": "noshow",
}
TRIGGERS: frozenset[str] = frozenset({"S12", "S13", "S14", *TRIGGER_STATUS})
# HL7 table 0278 filler status code (SCH-25) -> Appointment.status.
FILLER_STATUS = {
    "BOOKED": "booked",
    "OVERBOOK": "booked",
    "PENDING": "pending",
    "WAITLIST": "waitlist",
    "CANCELLED": "cancelled",
    "DC": "cancelled",
    "COMPLETE": "fulfilled",
    "NOSHOW": "noshow",
    "STARTED": "arrived",
    "DELETED": "entered-in-error",
}
# Provider roles (AIP-4, user table 0286) that are v3 participation types.
ROLE = {
    "ATTENDING": ("ATND", "attender"),
    "ATND": ("ATND", "attender"),
    "REFERRING": ("REF", "referrer"),
    "REF": ("REF", "referrer"),
    "CONSULTING": ("CON", "consultant"),
    "CON": ("CON", "consultant"),
    "ADMITTING": ("ADM", "admitter"),
    "PRIMARY": ("PPRF", "primary performer"),
    "PP": ("PPRF", "primary performer"),
}


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    trigger = msg.message_type[1]
    if trigger not in TRIGGERS:
        raise MappingError("MSH-9", f"SIU^{trigger} is not supported")
    out = Output()
    sch = require(msg, "SCH")
    placer, filler = sch.field(1).rep(1), sch.field(2).rep(1)
    key_rep, kind = (placer, "placer") if dt.c(placer, 1) else (filler, "filler")
    if not dt.c(key_rep, 1):
        raise MappingError("SCH-1", "an appointment id (SCH-1 placer or SCH-2 filler) is required")
    patient_reference = patient_ref(msg, ctx, out)

    status_code = dt.c(sch.field(25).rep(1), 1).upper()
    status = TRIGGER_STATUS.get(trigger) or FILLER_STATUS.get(status_code, "booked")

    start, end = _timing(msg, ctx)
    if not (start and end) and status not in ("proposed", "cancelled", "waitlist"):
        # FHIR invariant app-3: only proposed/cancelled/waitlist appointments may lack them.
        raise MappingError(
            "SCH-11", f"a {status} appointment needs a start and an end (SCH-11.4/11.5 or TQ1-7/8)"
        )
    duration = dt.c(sch.field(9).rep(1), 1)
    unit = dt.c(sch.field(10).rep(1), 1).lower()
    minutes = None
    if duration.isdigit():
        factor = {"min": 1, "m": 1, "": 1, "h": 60, "hr": 60, "s": 0}.get(unit)
        minutes = int(duration) * factor if factor else None

    participants: list[JSON] = [{"actor": ref(patient_reference), "status": "accepted"}]
    service_types = [dt.cwe(ais.field(3).rep(1), ctx) for ais in msg.segments("AIS")]
    for aip in msg.segments("AIP"):
        for rep in dt.reps(aip.field(3)):
            who = practitioner_ref(rep, msg, ctx, out)
            if who:
                participants.append(
                    dt.prune(
                        {
                            "type": _role(aip.field(4).rep(1), ctx),
                            "actor": who,
                            "status": "accepted",
                        }
                    )
                )
    for ail in msg.segments("AIL"):
        place = location_ref(ail.field(3).rep(1), ctx, out)
        if place:
            participants.append({"actor": ref(place), "status": "accepted"})

    identifiers = []
    for rep, code in ((placer, "PLAC"), (filler, "FILL")):
        ident = dt.ei(rep, ctx)
        if ident:
            ident["type"] = {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": code}
                ]
            }
            identifiers.append(ident)
    reason = dt.cwe(sch.field(7).rep(1), ctx, "0276")
    appointment = {
        "resourceType": "Appointment",
        "id": ids.appointment(f"{kind}|{dt.c(key_rep, 1)}|{dt.c(key_rep, 2)}"),
        "identifier": identifiers,
        "status": status,
        "cancelationReason": dt.cwe(sch.field(6).rep(1), ctx) if status == "cancelled" else None,
        "serviceType": service_types,
        "appointmentType": dt.cwe(sch.field(8).rep(1), ctx, "0277"),
        "reasonCode": [reason] if reason else None,
        "start": start,
        "end": end,
        "minutesDuration": minutes,
        "comment": "\n".join(n["text"] for n in notes(msg.segments("NTE"))),
        "participant": participants,
    }
    out.add(dt.prune(appointment))
    return out.resources()


def _role(rep: Repetition, ctx: MappingContext) -> list[JSON] | None:
    concept = dt.cwe(rep, ctx, "0286")
    if concept is None:
        return None
    target = ROLE.get(dt.c(rep, 1).upper())
    if target:
        concept["coding"].append({"system": PARTICIPATION, "code": target[0], "display": target[1]})
    return [concept]


def _timing(msg: ParsedMessage, ctx: MappingContext) -> tuple[str | None, str | None]:
    """Start and end: TQ1-7/8 (v2.5+) or SCH-11 TQ-4/5 (deprecated but still sent)."""
    tq1 = msg.segment("TQ1")
    if tq1 is not None and dt.c(tq1.field(7).rep(1), 1):
        return (
            dt.timestamp_instant(dt.c(tq1.field(7).rep(1), 1), ctx, "TQ1-7"),
            dt.timestamp_instant(dt.c(tq1.field(8).rep(1), 1), ctx, "TQ1-8"),
        )
    sch = msg.segment("SCH")
    if sch is None:
        return None, None
    tq = sch.field(11).rep(1)
    return (
        dt.timestamp_instant(dt.c(tq, 4), ctx, loc(sch, 11, msg)),
        dt.timestamp_instant(dt.c(tq, 5), ctx, loc(sch, 11, msg)),
    )
