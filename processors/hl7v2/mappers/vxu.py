"""VXU^V04 -> Immunization per ORC/RXA/RXR (with the Patient, manufacturer, performer)."""

from __future__ import annotations

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import JSON, Output, loc, patient_ref, practitioner_ref, ref
from .visit import visit_resources

# HL7 table 0322 completion status -> Immunization.status.
COMPLETION = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}
MVX = vocab.CODING_SYSTEMS["MVX"]
PERFORMER_FUNCTION = vocab.V2 + "0443"


def _groups(msg: ParsedMessage) -> list[tuple[Segment | None, Segment, list[Segment]]]:
    """(ORC, RXA, RXRs) per administration; ORC precedes its RXA in the ORDER group."""
    groups: list[tuple[Segment | None, Segment, list[Segment]]] = []
    orc: Segment | None = None
    for seg in msg.segments():
        if seg.name == "ORC":
            orc = seg
        elif seg.name == "RXA":
            groups.append((orc, seg, []))
            orc = None
        elif seg.name == "RXR" and groups:
            groups[-1][2].append(seg)
    return groups


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    visit_resources(msg, patient_reference, ctx, out)
    groups = _groups(msg)
    if not groups:
        raise MappingError("RXA", "a VXU^V04 needs at least one RXA")
    for orc, rxa, rxrs in groups:
        _immunization(msg, orc, rxa, rxrs, patient_reference, ctx, out)
    return out.resources()


def _immunization(
    msg: ParsedMessage,
    orc: Segment | None,
    rxa: Segment,
    rxrs: list[Segment],
    patient_reference: str,
    ctx: MappingContext,
    out: Output,
) -> None:
    vaccine = dt.cwe(rxa.field(5).rep(1), ctx, "0292")
    if vaccine is None:
        raise MappingError(loc(rxa, 5, msg), "RXA-5 (administered code) is required")
    when_rep = rxa.field(3).rep(1)
    if not dt.c(when_rep, 1):
        raise MappingError(loc(rxa, 3, msg), "RXA-3 (start of administration) is required")
    when = dt.datetime_(when_rep, ctx, loc(rxa, 3, msg))
    key: tuple[str, ...]
    identifiers = []
    filler = (dt.c(orc.field(3).rep(1), 1), dt.c(orc.field(3).rep(1), 2)) if orc else ("", "")
    placer = (dt.c(orc.field(2).rep(1), 1), dt.c(orc.field(2).rep(1), 2)) if orc else ("", "")
    for (value, ns), kind in ((placer, "PLAC"), (filler, "FILL")):
        if value:
            ident: JSON = {
                "type": {"coding": [{"system": vocab.V2 + "0203", "code": kind}]},
                "value": value,
            }
            if ns:
                ident["system"] = "urn:carelog:sid:" + ns
            identifiers.append(ident)
    if filler[0]:
        key = ("filler", *filler)
    elif placer[0]:
        key = ("placer", *placer)
    else:
        first = vaccine.get("coding", [{}])[0]
        key = ("administration", patient_reference, first.get("code", ""), dt.c(when_rep, 1))
    completion = dt.c(rxa.field(20).rep(1), 1).upper()
    status = COMPLETION.get(completion, "completed")
    if dt.c(rxa.field(21).rep(1), 1).upper() == "D":
        status = "entered-in-error"
    amount = dt.c(rxa.field(6).rep(1), 1)
    dose = None
    if amount and amount != "999":  # 999: amount unknown (CDC IIS guide)
        dose = dt.quantity(amount, rxa.field(7).rep(1), loc(rxa, 6, msg))
    manufacturer = None
    mvx = rxa.field(17).rep(1)
    if dt.c(mvx, 1):
        org = {
            "resourceType": "Organization",
            "id": ids.organization(MVX, dt.c(mvx, 1)),
            "identifier": [{"system": MVX, "value": dt.c(mvx, 1)}],
            "active": True,
            "name": dt.c(mvx, 2) or dt.c(mvx, 1),
        }
        manufacturer = ref(out.add(org), str(org["name"]))
    source = dt.c(rxa.field(9).rep(1), 1)
    performers = []
    for rep in dt.reps(rxa.field(10)):
        who = practitioner_ref(rep, msg, ctx, out)
        if who:
            performers.append(
                {
                    "function": {
                        "coding": [
                            {
                                "system": PERFORMER_FUNCTION,
                                "code": "AP",
                                "display": "Administering Provider",
                            }
                        ]
                    },
                    "actor": who,
                }
            )
    route = dt.cwe(rxrs[0].field(1).rep(1), ctx, "0162") if rxrs else None
    site = dt.cwe(rxrs[0].field(2).rep(1), ctx, "0163") if rxrs else None
    expiration = dt.c(rxa.field(16).rep(1), 1)
    immunization = {
        "resourceType": "Immunization",
        "id": ids.immunization(*key),
        "identifier": identifiers,
        "status": status,
        "statusReason": dt.cwe(rxa.field(18).rep(1), ctx) if status == "not-done" else None,
        "vaccineCode": vaccine,
        "patient": ref(patient_reference),
        "occurrenceDateTime": when,
        "primarySource": source == "00" if source else None,
        "reportOrigin": dt.cwe(rxa.field(9).rep(1), ctx) if source and source != "00" else None,
        "manufacturer": manufacturer,
        "lotNumber": dt.c(rxa.field(15).rep(1), 1),
        "expirationDate": dt.date_(rxa.field(16).rep(1), loc(rxa, 16, msg)) if expiration else None,
        "site": site,
        "route": route,
        "doseQuantity": dose,
        "performer": performers,
    }
    out.add(dt.prune(immunization))
