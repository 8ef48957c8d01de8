"""The values a search parameter indexes, from what its FHIRPath expression selected.

One function per parameter kind turns FHIR data types into index rows, the way the FHIR
search spec maps them: HumanName and Address to their string parts, Coding /
CodeableConcept / Identifier / ContactPoint / code / boolean to (system, code, text),
date / dateTime / instant / Period / Timing to microsecond ranges, Reference to
(type, id, url), Quantity / Range / number to (value, system, code, unit).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from projections.fhir_store.fhir_dates import MAX_US, MIN_US, DateFormatError, date_range

_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})
# [base/]Type/id[/_history/version]; ids per the FHIR id data type.
_REFERENCE = re.compile(
    r"^(?:(?P<base>.*)/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[^/]+)?$"
)

StringRow = tuple[str, str]  # normalized, exact
TokenRow = tuple[str, str, str]  # system ('' when none), code ('' when none), normalized text
DateRow = tuple[int, int]
ReferenceRow = tuple[str, str, str]  # target type ('' if unknown), target id, reference as given
NumberRow = tuple[float, str, str, str]  # value, system, code, unit
UriRow = tuple[str]


def normalize(text: str) -> str:
    """Case- and accent-insensitive form used by string search (NFKD, marks dropped)."""
    if text.isascii():  # NFKD leaves ASCII as it is, and it has no combining marks
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text)
    if not decomposed.isascii():
        decomposed = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(decomposed.casefold().split())


def _strings(value: Any, out: list[str]) -> None:
    if type(value) is str:
        out.append(value)
    elif type(value) is list:
        for v in value:
            _strings(v, out)


def string_rows(values: list[Any]) -> list[StringRow]:
    texts: list[str] = []
    for value in values:
        if type(value) is str:
            texts.append(value)
        elif type(value) is dict:
            parts = _ADDRESS_PARTS if ("line" in value or "city" in value or "postalCode" in value
                                       or "country" in value or "state" in value
                                       or "district" in value) else _NAME_PARTS  # fmt: skip
            for part in parts:
                _strings(value.get(part), texts)
    return list(dict.fromkeys((normalize(t), t) for t in texts if t))


def _coding(coding: dict[str, Any], out: list[TokenRow], text: str = "") -> None:
    code = coding.get("code")
    system = coding.get("system")
    display = coding.get("display")
    label = normalize(display) if type(display) is str else text
    if type(code) is str or type(system) is str:
        out.append(
            (system if type(system) is str else "", code if type(code) is str else "", label)
        )


def token_rows(values: list[Any]) -> list[TokenRow]:
    out: list[TokenRow] = []
    for value in values:
        kind = type(value)
        if kind is str:
            out.append(("", value, ""))
        elif kind is bool:
            out.append(("", "true" if value else "false", ""))
        elif kind is dict:
            if "coding" in value or (
                "text" in value and "value" not in value and "code" not in value
            ):
                text = value.get("text")
                label = normalize(text) if type(text) is str else ""
                codings = value.get("coding") or []
                for coding in codings:
                    if type(coding) is dict:
                        _coding(coding, out, label)
                if label:  # CodeableConcept.text, for :text
                    out.append(("", "", label))
            elif "value" in value and type(value.get("value")) is str:
                system = value.get("system")
                if type(system) is str and system in _CONTACT_SYSTEMS:  # ContactPoint
                    out.append((system, value["value"], ""))
                else:  # Identifier
                    type_text = (value.get("type") or {}).get("text")
                    label = normalize(type_text) if type(type_text) is str else ""
                    out.append((system if type(system) is str else "", value["value"], label))
            else:  # Coding (or a Quantity used as a token)
                _coding(value, out)
    return list(dict.fromkeys(out))


def _range_of(text: Any) -> DateRow | None:
    if type(text) is not str:
        return None
    try:
        return date_range(text)
    except DateFormatError:
        return None


def date_rows(values: list[Any]) -> list[DateRow]:
    out: list[DateRow] = []
    for value in values:
        if type(value) is str:
            found = _range_of(value)
            if found:
                out.append(found)
        elif type(value) is dict:
            if "start" in value or "end" in value:  # Period
                start = _range_of(value.get("start"))
                end = _range_of(value.get("end"))
                if start or end:
                    out.append((start[0] if start else MIN_US, end[1] if end else MAX_US))
            elif "event" in value or "repeat" in value:  # Timing
                for event in value.get("event") or []:
                    found = _range_of(event)
                    if found:
                        out.append(found)
                bounds = (value.get("repeat") or {}).get("boundsPeriod")
                if type(bounds) is dict:
                    out.extend(date_rows([bounds]))
    return list(dict.fromkeys(out))


def parse_reference(reference: str) -> tuple[str, str]:
    """(type, id) of a literal reference; ('', reference) when it names no type."""
    match = _REFERENCE.match(reference)
    if match is None:
        return "", reference
    return match.group("type"), match.group("id")


def reference_rows(values: list[Any]) -> list[ReferenceRow]:
    out: list[ReferenceRow] = []
    for value in values:
        reference = value.get("reference") if type(value) is dict else value
        if type(reference) is not str or not reference or reference.startswith("#"):
            continue
        target_type, target_id = parse_reference(reference.split("|", 1)[0])
        out.append((target_type, target_id, reference))
    return list(dict.fromkeys(out))


def _number(value: Any) -> float | None:
    if type(value) in (int, float):
        return float(value)
    return None


def number_rows(values: list[Any]) -> list[NumberRow]:
    out: list[NumberRow] = []
    for value in values:
        if type(value) in (int, float):
            out.append((float(value), "", "", ""))
        elif type(value) is dict:
            if "low" in value or "high" in value:  # Range: both ends
                out.extend(number_rows([v for v in (value.get("low"), value.get("high")) if v]))
                continue
            number = _number(value.get("value"))
            if number is None:
                continue
            system, code, unit = value.get("system"), value.get("code"), value.get("unit")
            out.append((
                number,
                system if type(system) is str else "",
                code if type(code) is str else "",
                unit if type(unit) is str else "",
            ))  # fmt: skip
    return list(dict.fromkeys(out))


def uri_rows(values: list[Any]) -> list[UriRow]:
    return list(dict.fromkeys((v,) for v in values if type(v) is str and v))


ROWS: dict[str, Callable[[list[Any]], list[Any]]] = {
    "string": string_rows,
    "token": token_rows,
    "date": date_rows,
    "reference": reference_rows,
    "quantity": number_rows,
    "number": number_rows,
    "uri": uri_rows,
}
