"""SPM -> Specimen, and OBR-15 (specimen source, v2.5 and before) -> Specimen when no SPM."""

from __future__ import annotations

from processors.ids import order_identifier

from .. import datatypes as dt
from .. import ids
from ..context import MappingContext
from ..parser import ParsedMessage, Repetition, Segment
from ..tolerance import dropped
from .common import JSON, Output, loc, ref


def spm_key(msg: ParsedMessage, spm: Segment) -> str:
    """What keys a SPM group's observations: SPM-2, else the SPM's place in the message (the
    specimen has no id then, so its results stay apart from another group's)."""
    return spm.field(2).raw.strip() or f"{msg.control_id}|SPM{msg.segments('SPM').index(spm) + 1}"


def from_spm(
    msg: ParsedMessage, spm: Segment, patient_reference: str, ctx: MappingContext, out: Output
) -> str | None:
    """SPM -> Specimen, id from SPM-2 (placer^filler specimen ids); None without SPM-2."""
    key = spm.field(2).raw.strip()
    if not key:
        dropped(msg, loc(spm, 2, msg), "SPM-2 (specimen id) is empty: no Specimen")
        return None
    rep = spm.field(2).rep(1)
    placer, filler = rep.component(1), rep.component(2)
    identifiers = []
    for comp, kind in ((placer, "PLAC"), (filler, "FILL")):
        if dt.text(comp.sub(1)):
            number = (dt.text(comp.sub(1)), dt.text(comp.sub(2)))
            identifiers.append(order_identifier(number, kind, ctx.authority_system))
    collected = spm.field(17).rep(1)
    specimen = {
        "resourceType": "Specimen",
        "id": ids.specimen(key),
        "identifier": identifiers,
        "type": dt.cwe(spm.field(4).rep(1), ctx, "0487"),
        "subject": ref(patient_reference),
        "receivedTime": dt.datetime_(spm.field(18).rep(1), ctx, loc(spm, 18, msg)),
        "collection": {
            "collectedDateTime": dt.datetime_(collected, ctx, loc(spm, 17, msg)),
            "bodySite": dt.cwe(spm.field(8).rep(1), ctx, "0163"),
        },
    }
    return out.add(dt.prune(specimen))


def from_obr15(
    msg: ParsedMessage,
    obr: Segment,
    order_key: str,
    patient_reference: str,
    ctx: MappingContext,
    out: Output,
) -> str | None:
    """OBR-15 SPS (source CWE SPS-1, body site SPS-4) -> Specimen of the order, collected at
    OBR-7; id from the order. None when OBR-15 is empty."""
    sps = obr.field(15).rep(1)
    source = dt.cwe(_sub_rep(obr, sps, 1), ctx, "0070")
    site = dt.cwe(_sub_rep(obr, sps, 4), ctx, "0163")
    if source is None and site is None:
        return None
    specimen: JSON = {
        "resourceType": "Specimen",
        "id": ids.specimen(f"{order_key}|OBR-15"),
        "type": source,
        "subject": ref(patient_reference),
        "receivedTime": dt.datetime_(obr.field(14).rep(1), ctx, loc(obr, 14, msg)),
        "collection": {
            "collectedDateTime": dt.datetime_(obr.field(7).rep(1), ctx, loc(obr, 7, msg)),
            "bodySite": site,
        },
    }
    return out.add(dt.prune(specimen))


def _sub_rep(seg: Segment, sps: Repetition, n: int) -> Repetition:
    """Component n of an SPS, read as a CWE: its subcomponents are the CWE's components."""
    enc = seg.encoding
    raw = sps.components[n - 1] if 0 < n <= len(sps.components) else ""
    return Repetition(
        raw.replace(enc.subcomponent, enc.component) if enc.subcomponent else raw, enc
    )
