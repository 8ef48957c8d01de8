"""Physiologically possible values of the vital signs carelog maps: one table, every channel.

The ranges are wide on purpose: they catch garbage (a heart rate of -5 or 1e308 /min, a
saturation of 140 %), not clinical outliers, which are the clinician's to judge. A value is
checked when its Observation (or component) is coded with one of these LOINC codes and its
valueQuantity is in one of the listed UCUM units; another unit for a listed code is refused,
since the range could not be checked and the unit is wrong for the measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from schemas.outcome import Issue

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True, slots=True)
class Plausible:
    """`name` of the measurement and, per UCUM unit, the inclusive range a body can show."""

    name: str
    ranges: dict[str, tuple[float, float]]


_RATE = {"/min": (0.0, 600.0)}
_PRESSURE = {"mm[Hg]": (0.0, 500.0)}
_SATURATION = {"%": (0.0, 100.0)}

PLAUSIBLE: dict[str, Plausible] = {
    "8867-4": Plausible("Heart rate", _RATE),
    "8889-8": Plausible("Heart rate by Pulse oximetry", _RATE),
    "9279-1": Plausible("Respiratory rate", {"/min": (0.0, 300.0)}),
    "59408-5": Plausible("Oxygen saturation by Pulse oximetry", _SATURATION),
    "2708-6": Plausible("Oxygen saturation in Arterial blood", _SATURATION),
    "8480-6": Plausible("Systolic blood pressure", _PRESSURE),
    "8462-4": Plausible("Diastolic blood pressure", _PRESSURE),
    "8478-0": Plausible("Mean blood pressure", _PRESSURE),
    "8310-5": Plausible("Body temperature", {"Cel": (0.0, 60.0), "[degF]": (32.0, 140.0)}),
    "8302-2": Plausible(
        "Body height", {"cm": (0.0, 300.0), "m": (0.0, 3.0), "[in_i]": (0.0, 120.0)}
    ),
    "29463-7": Plausible(
        "Body weight", {"kg": (0.0, 1000.0), "g": (0.0, 1.0e6), "[lb_av]": (0.0, 2200.0)}
    ),
}


def plausibility_issues(resource: dict[str, Any], where: str) -> list[Issue]:
    """Issues for the Observation's values (and its components') outside PLAUSIBLE."""
    if resource.get("resourceType") != "Observation":
        return []
    issues = _measurement(resource, where)
    components = resource.get("component")
    if isinstance(components, list):
        for index, component in enumerate(components):
            if isinstance(component, dict):
                issues.extend(_measurement(component, f"{where}.component[{index}]"))
    return issues


def _measurement(node: dict[str, Any], where: str) -> list[Issue]:
    quantity = node.get("valueQuantity")
    if not isinstance(quantity, dict):
        return []
    known = _known(node.get("code"))
    value, unit = quantity.get("value"), quantity.get("code")
    if known is None or quantity.get("system") != UCUM or not isinstance(unit, str):
        return []
    unit_problem = wrong_unit(known, unit)
    if unit_problem:
        return [Issue(unit_problem, "value", location=f"{where}.valueQuantity.code")]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    value_problem = implausible(known, unit, value)
    if value_problem:
        return [Issue(value_problem, "value", location=f"{where}.valueQuantity.value")]
    return []


def wrong_unit(known: Plausible, unit: str) -> str | None:
    """Why `unit` (UCUM) is not one `known` is measured in, or None."""
    if unit in known.ranges:
        return None
    return f"{unit[:32]!r} is not a unit of {known.name} ({', '.join(known.ranges)})"


def implausible(known: Plausible, unit: str, value: float) -> str | None:
    """Why `value` in `unit` (one of known's) is no possible `known`, or None."""
    low, high = known.ranges[unit]
    if low <= value <= high:
        return None
    return (
        f"{str(value)[:32]} {unit} is not a possible {known.name} "
        f"(plausible range {low:g} to {high:g} {unit})"
    )


def _known(code: Any) -> Plausible | None:
    codings = code.get("coding") if isinstance(code, dict) else None
    if not isinstance(codings, list):
        return None
    for coding in codings:
        if isinstance(coding, dict) and coding.get("system") == LOINC:
            known = PLAUSIBLE.get(coding.get("code"))  # type: ignore[arg-type]
            if known is not None:
                return known
    return None
