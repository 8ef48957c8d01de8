"""HL7 v2 data types -> FHIR R4 data types (plain dicts), after the HL7 v2-to-FHIR IG.

Each converter takes one repetition of a field (`parser.Repetition`) and returns the FHIR
value, or None when the repetition holds nothing. HL7's explicit null `""` reads as empty.
"""

from __future__ import annotations

import re
from typing import Any

from schemas.hl7v2.patient import hd_uri
from schemas.terminology import ucum

from . import vocab
from .context import MappingContext
from .errors import MappingError
from .parser import Field, Repetition
from .timestamps import to_date, to_datetime, to_time

JSON = dict[str, Any]
_NM = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")


def text(value: str) -> str:
    """A leaf as FHIR wants it: trimmed, with HL7's null ("") read as empty."""
    value = value.strip()
    return "" if value == '""' else value


def c(rep: Repetition, n: int, s: int = 1) -> str:
    return text(rep.c(n, s))


def reps(field: Field) -> list[Repetition]:
    """The non-empty repetitions of a field."""
    return [r for r in field.repetitions if text(r.raw)]


def prune_top(obj: JSON) -> JSON:
    """`prune` of the first level only, for a resource whose nested values are built clean
    (codes from `cwe`, references): the per-OBX path, where a deep prune was a quarter of it."""
    return {k: v for k, v in obj.items() if v is not None and v != "" and v != [] and v != {}}


def prune(obj: JSON) -> JSON:
    """Drop empty values (None, "", [], {}) so that resources hold only what was sent.

    Every resource passes through here, nested values included: exact type checks and one
    pass per list keep it cheap (it was a quarter of an ORU's mapping time).
    """
    out: JSON = {}
    for key, value in obj.items():
        kind = type(value)
        if kind is dict:
            value = prune(value)
        elif kind is list:
            value = [
                pruned
                for pruned in (prune(v) if type(v) is dict else v for v in value)
                if pruned is not None and pruned != "" and pruned != {} and pruned != []
            ]
        elif value is None or (kind is str and not value):
            continue
        if value or kind not in (dict, list):
            out[key] = value
    return out


# --- numbers, times ----------------------------------------------------------------------


def decimal(value: str, location: str) -> int | float:
    """NM -> FHIR decimal (a JSON number: int when there is no fraction)."""
    v = text(value)
    if not _NM.match(v):
        raise MappingError(location, f"{value!r} is not a number (NM)")
    return float(v) if "." in v else int(v)


def datetime_(rep: Repetition, ctx: MappingContext, location: str) -> str | None:
    """TS/DTM -> FHIR dateTime (TS-1; TS-2 degree of precision is deprecated and ignored)."""
    v = c(rep, 1)
    return to_datetime(v, ctx.zone, location) if v else None


def date_(rep: Repetition, location: str) -> str | None:
    v = c(rep, 1)
    return to_date(v, location) if v else None


# --- identifiers -------------------------------------------------------------------------


def hd_system(namespace: str, universal_id: str, universal_type: str, ctx: MappingContext) -> str:
    """HD -> a URI naming the authority: urn:oid / urn:uuid / the URI itself / the namespace."""
    uri = hd_uri(namespace, universal_id, universal_type)  # the HL7 v2 contract's rule
    return uri or ctx.authority_system(namespace or universal_id)


def cx(rep: Repetition, ctx: MappingContext, default_authority: str = "") -> JSON | None:
    """CX -> Identifier: value CX-1, system from CX-4 (HD), type CX-5 (table 0203)."""
    value = c(rep, 1)
    if not value:
        return None
    ns, uid, utype = c(rep, 4, 1), c(rep, 4, 2), c(rep, 4, 3)
    ns = ns or (default_authority if not uid else "")
    ident: JSON = {"value": value}
    if ns or uid:
        ident["system"] = hd_system(ns, uid, utype, ctx)
    id_type = c(rep, 5)
    if id_type:
        ident["type"] = {"coding": [{"system": vocab.V2 + "0203", "code": id_type}]}
    start, end = c(rep, 7), c(rep, 8)
    if start or end:
        ident["period"] = prune(
            {
                "start": to_date(start, "CX-7") if start else None,
                "end": to_date(end, "CX-8") if end else None,
            }
        )
    if ns:
        ident["assigner"] = {"display": ns}
    return ident


def ei(rep: Repetition, ctx: MappingContext) -> JSON | None:
    """EI -> Identifier: EI-1 value, EI-2 namespace / EI-3, EI-4 universal id -> system."""
    value = c(rep, 1)
    if not value:
        return None
    ns, uid, utype = c(rep, 2), c(rep, 3), c(rep, 4)
    ident: JSON = {"value": value}
    if ns or uid:
        ident["system"] = hd_system(ns, uid, utype, ctx)
    return ident


# --- names, addresses, telecom -----------------------------------------------------------


def xpn(rep: Repetition) -> JSON | None:
    """XPN -> HumanName (family XPN-1.1, given XPN-2 and XPN-3, prefix XPN-5, use XPN-7)."""
    name = prune(
        {
            "use": vocab.NAME_USE.get(c(rep, 7)),
            "family": c(rep, 1, 1),
            "given": [g for g in (c(rep, 2), c(rep, 3)) if g],
            "prefix": [c(rep, 5)],
            "suffix": [c(rep, 4), c(rep, 6)],
        }
    )
    return name or None


def xcn_name(rep: Repetition) -> JSON | None:
    """The name of an XCN: family XCN-2, given XCN-3/4, suffix XCN-5, prefix XCN-6, degree XCN-7."""
    name = prune(
        {
            "family": c(rep, 2, 1),
            "given": [g for g in (c(rep, 3), c(rep, 4)) if g],
            "prefix": [c(rep, 6)],
            "suffix": [c(rep, 5), c(rep, 7)],
        }
    )
    return name or None


def xcn_identifier(rep: Repetition, ctx: MappingContext, default_authority: str) -> JSON | None:
    """XCN-1 with its authority XCN-9 (HD) and type XCN-13 -> Identifier."""
    value = c(rep, 1)
    if not value:
        return None
    ns, uid, utype = c(rep, 9, 1), c(rep, 9, 2), c(rep, 9, 3)
    ns = ns or (default_authority if not uid else "")
    ident: JSON = {"value": value, "system": hd_system(ns, uid, utype, ctx)}
    id_type = c(rep, 13)
    if id_type:
        ident["type"] = {"coding": [{"system": vocab.V2 + "0203", "code": id_type}]}
    return ident


def xad(rep: Repetition) -> JSON | None:
    """XAD -> Address: lines XAD-1.1 and XAD-2, city 3, state 4, postal code 5, country 6."""
    kind = c(rep, 7)
    address = prune(
        {
            "use": vocab.ADDRESS_USE.get(kind),
            "type": vocab.ADDRESS_TYPE.get(kind),
            "line": [c(rep, 1, 1), c(rep, 2)],
            "city": c(rep, 3),
            "district": c(rep, 9),
            "state": c(rep, 4),
            "postalCode": c(rep, 5),
            "country": c(rep, 6),
        }
    )
    return address or None


def xtn(rep: Repetition, default_use: str | None = None) -> JSON | None:
    """XTN -> ContactPoint: email XTN-4, else XTN-1, else +country (area) local xext."""
    equipment = c(rep, 3)
    email = c(rep, 4)
    system = vocab.TELECOM_SYSTEM.get(equipment)
    if email and (system in (None, "email") or equipment == "Internet"):
        value, system = email, "email"
    else:
        value = c(rep, 1) or c(rep, 12)
        if not value:
            country, area, local, ext = c(rep, 5), c(rep, 6), c(rep, 7), c(rep, 8)
            value = " ".join(
                p
                for p in (f"+{country}" if country else "", f"({area})" if area else "", local)
                if p
            )
            if value and ext:
                value += f" x{ext}"
        system = system or "phone"
    if not value:
        return None
    use = vocab.TELECOM_USE.get(c(rep, 2)) or default_use
    if equipment == "CP":
        use = "mobile"
    return prune({"system": system, "value": value, "use": use})


# --- codes -------------------------------------------------------------------------------


def coding_system(name: str, ctx: MappingContext, default_table: str = "") -> str | None:
    """A v2 coding system name (table 0396) -> code system URI."""
    name = name.strip()
    if not name:
        return vocab.V2 + default_table if default_table else None
    known = vocab.CODING_SYSTEMS.get(name.upper())
    if known:
        return known
    m = re.match(r"^HL7-?(\d{4})$", name, re.IGNORECASE)
    if m:
        return vocab.V2 + m.group(1)
    m = re.match(r"^99", name)  # locally defined (99zzz): kept as sent under carelog's base
    return ctx.code_system_base + name if m or name else None


def _coding(
    code: str, display: str, system_name: str, version: str, ctx: MappingContext, default_table: str
) -> JSON | None:
    if not code:
        return None
    coding: JSON = {}
    system = coding_system(system_name, ctx, default_table)
    if system:
        coding["system"] = system
    if version:
        coding["version"] = version
    coding["code"] = code
    if display:
        coding["display"] = display
    return coding


def cwe(rep: Repetition, ctx: MappingContext, default_table: str = "") -> JSON | None:
    """CWE/CE/CNE -> CodeableConcept: codings from triplets 1-3 and 4-6, text CWE-9 (or CWE-2).

    `default_table` names the HL7 table (e.g. "0163") for a code sent without a system.
    """
    # Components 1-9 read once each (most codes send 3): every OBX, order and report has one.
    v = [c(rep, n) for n in range(1, min(len(rep.components), 9) + 1)]
    v += [""] * (9 - len(v))
    codings = [
        x
        for x in (
            _coding(v[0], v[1], v[2], v[6], ctx, default_table),
            _coding(v[3], v[4], v[5], v[7], ctx, default_table),
        )
        if x
    ]
    original = v[8]
    if not codings and not original and not v[1]:
        return None
    concept: JSON = {}
    if codings:
        concept["coding"] = codings
    if original:
        concept["text"] = original
    elif not codings and v[1]:
        concept["text"] = v[1]
    return concept


def table_concept(code: str, table: str, display: str = "") -> JSON:
    """A code of an HL7 table as a CodeableConcept in the v2-XXXX code system."""
    return {"coding": [prune({"system": vocab.V2 + table, "code": code, "display": display})]}


# --- vocabulary maps ---------------------------------------------------------------------


def gender(code: str) -> str | None:
    """Table 0001 -> administrative-gender (unknown codes -> None, never guessed)."""
    return vocab.SEX.get(text(code).upper())


def marital_status(rep: Repetition) -> JSON | None:
    code = c(rep, 1)
    if not code:
        return None
    target = vocab.MARITAL.get(code.upper())
    if target is None:
        return table_concept(code, "0002", c(rep, 2))
    system, fhir_code, display = target
    concept: JSON = {"coding": [{"system": system, "code": fhir_code, "display": display}]}
    if c(rep, 2):
        concept["text"] = c(rep, 2)
    return concept


def encounter_class(code: str) -> JSON:
    """Table 0004 patient class -> Encounter.class (v3 ActCode); unknown kept as v2-0004."""
    code = text(code).upper()
    target = vocab.PATIENT_CLASS.get(code)
    if target is None:
        return {"system": vocab.V2 + "0004", "code": code or "U"}
    return {"system": vocab.V3_ACT_CODE, "code": target[0], "display": target[1]}


def race_extension(race_reps: list[Repetition], ctx: MappingContext) -> JSON | None:
    """Table 0005 (PID-10) -> the US Core race extension (ombCategory / detailed / text)."""
    parts: list[JSON] = []
    texts: list[str] = []
    for rep in race_reps:
        code, display = c(rep, 1), c(rep, 2)
        if display:
            texts.append(display)
        if not code:
            continue
        system = coding_system(c(rep, 3), ctx, "0005")
        if system == vocab.V2 + "0005":
            system = vocab.CDC_RACE
        if code in ("UNK", "ASKU"):
            system = vocab.V3_NULL
        kind = "ombCategory" if code in vocab.OMB_RACE or system == vocab.V3_NULL else "detailed"
        coding = prune(
            {"system": system, "code": code, "display": vocab.OMB_RACE.get(code, display)}
        )
        parts.append({"url": kind, "valueCoding": coding})
    if not parts and not texts:
        return None
    parts.append(
        {"url": "text", "valueString": ", ".join(texts) or parts[0]["valueCoding"]["code"]}
    )
    return {"url": vocab.US_CORE_RACE, "extension": parts}


def interpretation(code: str) -> JSON | None:
    """Table 0078 abnormal flag -> Observation.interpretation (v3 ObservationInterpretation)."""
    code = text(code)
    if not code:
        return None
    if code in vocab.INTERPRETATION:
        return {"coding": [{"system": vocab.V3_INTERPRETATION, "code": code}]}
    return table_concept(code, "0078")


def discharge_disposition(code: str) -> JSON | None:
    code = text(code)
    if not code:
        return None
    concept = table_concept(code, "0112", vocab.DISCHARGE_V2_DISPLAY.get(code, ""))
    target = vocab.DISCHARGE.get(code)
    if target:
        concept["coding"].append(
            {"system": vocab.DISCHARGE_DISPOSITION, "code": target[0], "display": target[1]}
        )
    return concept


def relationship(rep: Repetition, ctx: MappingContext) -> JSON | None:
    """Table 0063 -> RelatedPerson.relationship: the v3 RoleCode plus the code as sent."""
    concept = cwe(rep, ctx, "0063")
    if concept is None:
        return None
    code = c(rep, 1).upper()
    target = vocab.RELATIONSHIP.get(code)
    if target:
        concept.setdefault("coding", []).append(
            {"system": vocab.V3_ROLE, "code": target[0], "display": target[1]}
        )
    return concept


# --- OBX-5 values ------------------------------------------------------------------------


def quantity(value: str, units: Repetition, location: str) -> JSON:
    """NM + CWE units (OBX-6) -> Quantity; UCUM units get system and code.

    Units coded UCUM are claimed UCUM (and validated as such); units without a coding system
    are claimed UCUM only when they parse as UCUM, else kept as the unit's text alone.
    """
    q: JSON = {"value": decimal(value, location)}
    unit_code, unit_text, unit_system = c(units, 1), c(units, 2), c(units, 3)
    if unit_code or unit_text:
        q["unit"] = unit_text or unit_code
    if unit_code and (
        unit_system.upper() == "UCUM" or (not unit_system and ucum.problem(unit_code) is None)
    ):
        q["system"] = "http://unitsofmeasure.org"
        q["code"] = unit_code
    return q


_COMPARATORS = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}


def structured_numeric(rep: Repetition, units: Repetition, location: str) -> tuple[str, Any]:
    """SN -> (value[x] name, value): Quantity (with comparator), Range (-) or Ratio (: /)."""
    comparator, num1, sep, num2 = c(rep, 1), c(rep, 2), c(rep, 3), c(rep, 4)
    if sep in ("-",) and num1 and num2:
        return "valueRange", {
            "low": quantity(num1, units, location),
            "high": quantity(num2, units, location),
        }
    if sep in (":", "/") and num1 and num2:
        return "valueRatio", {
            "numerator": {"value": decimal(num1, location)},
            "denominator": {"value": decimal(num2, location)},
        }
    if sep in ("+", ".") and num2:  # categorical results (e.g. 2+) stay as text
        return "valueString", f"{num1}{sep}{num2}"
    if not num1:
        raise MappingError(location, f"structured numeric {rep.raw!r} has no number")
    q = quantity(num1, units, location)
    if comparator and comparator != "=":
        if comparator not in _COMPARATORS:
            return "valueString", f"{comparator}{num1}"
        q["comparator"] = _COMPARATORS[comparator]
    return "valueQuantity", q


def observation_value(
    value_type: str, field: Field, units: Repetition, ctx: MappingContext, location: str
) -> tuple[str, Any] | None:
    """OBX-2 decides OBX-5's FHIR type. Returns (element name, value) or None when empty."""
    rs = reps(field)
    if not rs:
        return None
    vt = value_type.upper()
    first = rs[0]
    if vt == "NM":
        return "valueQuantity", quantity(first.raw, units, location)
    if vt in ("ST", "TX", "FT"):
        # Repetitions of a text value are lines; escapes (\.br\, \X0A\) already decoded.
        return "valueString", "\n".join(r.value for r in rs) if vt != "ST" else first.value.strip()
    if vt in ("CWE", "CE", "CNE", "CF"):
        concept = cwe(first, ctx)
        return ("valueCodeableConcept", concept) if concept else None
    if vt == "SN":
        return structured_numeric(first, units, location)
    if vt in ("DTM", "TS"):
        return "valueDateTime", to_datetime(c(first, 1), ctx.zone, location)
    if vt == "DT":
        return "valueDateTime", to_date(c(first, 1), location)
    if vt == "TM":
        return "valueTime", to_time(c(first, 1), location)
    raise MappingError(
        location.replace("-5", "-2"), f"OBX value type {value_type!r} is not supported"
    )


def reference_range(text_: str) -> JSON | None:
    """OBX-7 ("3.4-10.8", ">5", "<0.5") -> referenceRange (units are the observation's)."""
    t = text(text_)
    if not t:
        return None
    m = re.match(r"^\s*([+-]?\d*\.?\d+)\s*-\s*([+-]?\d*\.?\d+)\s*$", t)
    if m:
        return {"low": _num(m.group(1)), "high": _num(m.group(2)), "text": t}
    m = re.match(r"^\s*(<=?|>=?)\s*([+-]?\d*\.?\d+)\s*$", t)
    if m:
        side = "high" if m.group(1).startswith("<") else "low"
        return {side: _num(m.group(2)), "text": t}
    return {"text": t}


def _num(v: str) -> JSON:
    return {"value": float(v) if "." in v else int(v)}


# --- places ------------------------------------------------------------------------------


def pl_parts(rep: Repetition) -> tuple[str, str, str, str]:
    """PL -> (facility HD-1, point of care, room, bed)."""
    return c(rep, 4, 1), c(rep, 1), c(rep, 2), c(rep, 3)


def pl_location(rep: Repetition, ctx: MappingContext, location_id: str) -> JSON | None:
    """PL -> Location: the most specific level sent (bed, room or point of care)."""
    facility, poc, room, bed = pl_parts(rep)
    if not (poc or room or bed):
        return None
    physical = ("bd", "Bed") if bed else ("ro", "Room") if room else ("wa", "Ward")
    name = " ".join(p for p in (poc, room, bed) if p)
    return prune(
        {
            "resourceType": "Location",
            "id": location_id,
            "identifier": [
                {
                    "system": ctx.authority_system(facility or "location"),
                    "value": "^".join((poc, room, bed)).rstrip("^"),
                }
            ],
            "status": "active",
            "name": name,
            "description": c(rep, 9),
            "mode": "instance",
            "physicalType": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/location-physical-type",
                        "code": physical[0],
                        "display": physical[1],
                    }
                ]
            },
        }
    )


def timestamp_instant(value: str, ctx: MappingContext, location: str) -> str | None:
    """TS/DTM -> FHIR instant: needs a time, so a bare date gives None (the element is left out)."""
    v = text(value)
    if not v:
        return None
    result = to_datetime(v, ctx.zone, location)
    return result if "T" in result else None
