"""VXU^V04 -> Immunization per ORC/RXA/RXR (with the Patient, manufacturer, performer), and an
Observation per OBX of the administration (partOf the Immunization: funding, eligibility, VIS).

Every ORDER group gives its own Immunization: a second group sharing the first's filler order
number (ORC-3) is keyed by that number and its place among the groups that share it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from processors.ids import order_identifier

from .. import datatypes as dt
from .. import ids, vocab
from ..context import MappingContext
from ..errors import MappingError
from ..parser import ParsedMessage, Segment
from .common import (
    JSON,
    Output,
    loc,
    patient_ref,
    practitioner_ref,
    ref,
    required_code,
    required_time,
)
from .observations import observation
from .visit import visit_resources

# HL7 table 0322 completion status -> Immunization.status.
COMPLETION = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}
MVX = vocab.CODING_SYSTEMS["MVX"]
PERFORMER_FUNCTION = vocab.V2 + "0443"


@dataclass
class _Group:
    """One ORDER group: ORC (optional), RXA, its RXRs and its OBX (each with its NTEs)."""

    orc: Segment | None
    rxa: Segment
    rxrs: list[Segment] = field(default_factory=list)
    results: list[tuple[Segment, list[Segment]]] = field(default_factory=list)


def _groups(msg: ParsedMessage) -> list[_Group]:
    """ORC precedes its RXA in the ORDER group; RXR and OBX follow it."""
    groups: list[_Group] = []
    orc: Segment | None = None
    for seg in msg.segments():
        if seg.name == "ORC":
            orc = seg
        elif seg.name == "RXA":
            groups.append(_Group(orc, seg))
            orc = None
        elif not groups:
            continue
        elif seg.name == "RXR":
            groups[-1].rxrs.append(seg)
        elif seg.name == "OBX":
            groups[-1].results.append((seg, []))
        elif seg.name == "NTE" and groups[-1].results:
            groups[-1].results[-1][1].append(seg)
    return groups


def map_message(msg: ParsedMessage, ctx: MappingContext) -> list[JSON]:
    out = Output()
    patient_reference = patient_ref(msg, ctx, out)
    visit_resources(msg, patient_reference, ctx, out)
    groups = _groups(msg)
    if not groups:
        raise MappingError("RXA", "a VXU^V04 needs at least one RXA")
    seen: Counter[str] = Counter()
    for group in groups:
        immunization = _immunization(msg, group, seen, patient_reference, ctx, out)
        for obx, obx_notes in group.results:
            observation(
                msg, obx, obx_notes, immunization, None, patient_reference, None, [], ctx, out,
                category=None, part_of=immunization,
            )  # fmt: skip
    return out.resources()


def _immunization(
    msg: ParsedMessage,
    group: _Group,
    seen: Counter[str],
    patient_reference: str,
    ctx: MappingContext,
    out: Output,
) -> str:
    """RXA (+ ORC, RXR) -> Immunization; `seen` counts the groups per order-number key."""
    orc, rxa, rxrs = group.orc, group.rxa, group.rxrs
    vaccine = required_code(rxa, 5, "administered code", msg, ctx, "0292")
    when = required_time(rxa, 3, "start of administration", msg, ctx)
    key: tuple[str, ...]
    identifiers = []
    filler = (dt.c(orc.field(3).rep(1), 1), dt.c(orc.field(3).rep(1), 2)) if orc else ("", "")
    placer = (dt.c(orc.field(2).rep(1), 1), dt.c(orc.field(2).rep(1), 2)) if orc else ("", "")
    for number, kind in ((placer, "PLAC"), (filler, "FILL")):
        ident = order_identifier(number, kind, ctx.authority_system)
        if ident:
            identifiers.append(ident)
    if filler[0]:
        key = ("filler", *filler)
    elif placer[0]:
        key = ("placer", *placer)
    else:
        first = vaccine.get("coding", [{}])[0]
        key = (
            "administration",
            patient_reference,
            first.get("code", ""),
            dt.c(rxa.field(3).rep(1), 1),
        )
    seen["|".join(key)] += 1
    if seen["|".join(key)] > 1:  # a repeated group sharing the order number: its own resource
        key = (*key, str(seen["|".join(key)]))
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
        # RXA-22 system entry time: optional, a bad value is dropped (tolerance.POLICY).
        "recorded": dt.datetime_(rxa.field(22).rep(1), ctx, loc(rxa, 22, msg)),
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
    return out.add(dt.prune(immunization))
