"""Device reading batches (POST /devices/readings) to FHIR R4 Device and Observations.

The batch: device {id, type?, manufacturer?, serial?}, patient {system, value, assigner?},
readings [{code, system, display?, value, unit, time}] (tests/corpus/device/ has one).

- Device: id resource_id("Device", device.id).
- Patient: only referenced, never emitted. Its id is derived as the HL7 PID-3 path derives
  it, ids.patient_id(authority's system, value), so readings land on the patient ADT
  created: `assigner`, when sent, names the assigning authority as PID-3's CX-4.1 does,
  and ids.authority_system gives its system (NWH -> urn:carelog:sid:NWH, SSA -> the US SSN
  system); without an assigner, `system` is the authority's own URI (as CX-4.2 with an ISO
  or URI type). `system` as sent stays on Observation.subject.identifier. A device knows
  nothing else about the patient; a Patient carrying only an identifier would, as a new
  version of the whole resource, wipe the name, birth date and addresses that ADT gave it.
- Observation per reading: status final, category vital-signs, LOINC code (an MDC code is
  kept as a further coding, mapped to LOINC where `device_codes` knows it), valueQuantity
  in UCUM, effectiveDateTime, subject and device. id resource_id("Observation", device.id,
  LOINC code (else the MDC code), time in UTC). Two readings of one measurement at one
  time (a monitor sending 59408-5 and MDC 150456 alike) are one Observation with both
  codings; if their values differ the batch is contradictory and rejected.
- Blood pressure stays one Observation per systolic / diastolic / mean reading, not the
  85354-9 panel with components: readings map one to one, and a systolic arriving without
  its diastolic needs no special case. (The R4 bp profile wants the panel; a later
  projection can build it.)

business_time is the latest reading time: the batch is complete as of then.
"""

from __future__ import annotations

import copy
import math
import re
from datetime import UTC, datetime
from typing import Any

import orjson

from processors import ids
from processors.device_codes import (
    LOINC,
    MDC,
    MDC_TO_LOINC,
    UCUM,
    UNIT_ALIASES,
    VITAL_SIGNS,
)
from processors.ids import resource_id
from processors.translation import TranslatedResource, Translation, TranslationError
from schemas.outcome import Issue

MAPPING_VERSION = "device-fhir/1.0.0"
_CODE_SHAPE = {LOINC: re.compile(r"\d{1,7}-\d"), MDC: re.compile(r"\d{1,10}")}
_CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
            "display": "Vital Signs",
        }
    ]
}


def translate_device(payload: bytes, event_id: str) -> Translation:
    """The Device and Observations of one batch; TranslationError names each bad JSON path.

    `event_id` is not part of any id: the same readings sent twice are the same resources.
    """
    try:
        batch = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise _error(f"not valid JSON: {exc}", "$", "structure") from None
    if not isinstance(batch, dict):
        raise _error("a JSON object {device, patient, readings} is expected", "$", "structure")
    issues: list[Issue] = []
    device = _object(batch, "device", issues)
    patient = _object(batch, "patient", issues)
    readings = batch.get("readings")
    if not isinstance(readings, list) or not readings:
        issues.append(
            Issue("a non-empty list of readings is expected", "required", "error", "readings")
        )
        readings = []
    device_id = _text(device, "id", "device", issues, required=True)
    subject = _subject(patient, issues)
    observations: dict[str, tuple[dict[str, Any], str]] = {}
    times: list[datetime] = []
    for index, reading in enumerate(readings):
        where = f"readings[{index}]"
        parsed = _reading(reading, where, issues)
        if parsed is None or device_id is None or subject is None:
            continue
        observation, time = _observation(parsed, device_id, subject)
        times.append(time)
        earlier = observations.get(observation["id"])
        if earlier is None:
            observations[observation["id"]] = (observation, where)
        elif _measured(earlier[0]) != _measured(observation):
            issues.append(
                Issue(
                    f"contradicts {earlier[1]}: same measurement and time, another value",
                    "conflict",
                    "error",
                    f"{where}.value",
                )
            )
        else:
            _add_codings(earlier[0], observation["code"]["coding"])
    if issues:
        raise TranslationError(issues)
    assert device is not None and device_id is not None  # no issues: both were read
    resources = [_device(device, device_id)] + [o for o, _ in observations.values()]
    return Translation([TranslatedResource(r) for r in resources], max(times), MAPPING_VERSION)


def _error(diagnostics: str, location: str, code: str = "value") -> TranslationError:
    return TranslationError([Issue(diagnostics, code, "error", location)])


def _object(node: dict[str, Any], key: str, issues: list[Issue]) -> Any:
    value = node.get(key)
    if not isinstance(value, dict):
        issues.append(Issue("an object is expected", "required", "error", key))
        return None
    return value


def _text(node: Any, key: str, where: str, issues: list[Issue], *, required: bool = False) -> Any:
    """node[key] if a non-blank string; None (with an issue if required or mistyped) else."""
    if not isinstance(node, dict):
        return None
    value = node.get(key)
    if isinstance(value, str) and value.strip():
        return value
    if value is not None or required:
        code = "required" if value is None else "value"
        issues.append(Issue("a non-empty string is expected", code, "error", f"{where}.{key}"))
    return None


def _subject(patient: Any, issues: list[Issue]) -> dict[str, Any] | None:
    system = _text(patient, "system", "patient", issues, required=True)
    value = _text(patient, "value", "patient", issues, required=True)
    assigner = _text(patient, "assigner", "patient", issues)
    if system is None or value is None:
        return None
    identifier: dict[str, Any] = {"system": system, "value": value}
    if assigner is not None:
        identifier["assigner"] = {"display": assigner}
    authority = ids.authority_system(assigner) if assigner is not None else system
    patient_id = ids.patient_id(authority, value)
    return {"reference": f"Patient/{patient_id}", "identifier": identifier}


def _reading(reading: Any, where: str, issues: list[Issue]) -> dict[str, Any] | None:
    """The reading with code system checked, unit as UCUM and time parsed, or None."""
    if not isinstance(reading, dict):
        issues.append(Issue("a reading object is expected", "structure", "error", where))
        return None
    before = len(issues)
    code = _text(reading, "code", where, issues, required=True)
    system = _text(reading, "system", where, issues, required=True)
    display = _text(reading, "display", where, issues)
    unit = _text(reading, "unit", where, issues, required=True)
    value = reading.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        issues.append(Issue("a finite JSON number is expected", "value", "error", f"{where}.value"))
    time = _time(reading.get("time"), f"{where}.time", issues)
    loinc = None
    shape = _CODE_SHAPE.get(system) if system else None
    if shape and code and not shape.fullmatch(code):
        issues.append(
            Issue(
                f"{code[:32]!r} is not a code of {system}", "code-invalid", "error", f"{where}.code"
            )
        )
        code = None
    if system == LOINC:
        loinc = code
    elif system == MDC:
        loinc = MDC_TO_LOINC.get(code, (None, None))[1] if code else None
    elif system is not None:
        issues.append(
            Issue(
                f"code system must be {LOINC} or {MDC}", "not-supported", "error", f"{where}.system"
            )
        )
    ucum = UNIT_ALIASES.get(unit, unit) if unit else None
    known = VITAL_SIGNS.get(loinc) if loinc else None
    if known and ucum is not None and ucum not in known.units:
        issues.append(
            Issue(
                f"{unit!r} is not a unit of {known.display} ({', '.join(sorted(known.units))})",
                "value",
                "error",
                f"{where}.unit",
            )
        )
    elif ucum is not None and not (ucum.isascii() and ucum.isprintable() and " " not in ucum):
        issues.append(Issue("not a UCUM code", "value", "error", f"{where}.unit"))
    if len(issues) > before:
        return None
    return {
        "code": code,
        "system": system,
        "display": display,
        "loinc": loinc,
        "value": value,
        "unit": unit,
        "ucum": ucum,
        "time": time,
    }


def _time(value: Any, where: str, issues: list[Issue]) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        issues.append(
            Issue(
                "a date and time with a UTC offset is expected (2026-11-03T14:00:00-05:00)",
                "value",
                "error",
                where,
            )
        )
        return None
    return parsed


def _observation(
    reading: dict[str, Any], device_id: str, subject: dict[str, Any]
) -> tuple[dict[str, Any], datetime]:
    time: datetime = reading["time"]
    key_code = reading["loinc"] or reading["code"]
    observation_id = resource_id(
        "Observation", device_id, key_code, time.astimezone(UTC).isoformat()
    )
    code: dict[str, Any] = {"coding": _codings(reading)}
    if reading["display"]:
        code["text"] = reading["display"]
    observation = {
        "resourceType": "Observation",
        "id": observation_id,
        "status": "final",
        "category": [copy.deepcopy(_CATEGORY)],
        "code": code,
        "subject": copy.deepcopy(subject),
        "effectiveDateTime": time.isoformat(),
        "valueQuantity": {
            "value": reading["value"],
            "unit": reading["unit"],
            "system": UCUM,
            "code": reading["ucum"],
        },
        "device": {"reference": f"Device/{resource_id('Device', device_id)}"},
    }
    return observation, time


def _measured(observation: dict[str, Any]) -> tuple[Any, Any]:
    quantity = observation["valueQuantity"]
    return quantity["value"], quantity["code"]


def _codings(reading: dict[str, Any]) -> list[dict[str, Any]]:
    """LOINC first (with the display LOINC gives it), then the MDC coding if sent as MDC."""
    codings: list[dict[str, Any]] = []
    loinc = reading["loinc"]
    known = VITAL_SIGNS.get(loinc) if loinc else None
    if loinc:
        display = known.display if known else reading["display"]
        codings.append(_coding(LOINC, loinc, display))
        codings.extend(_coding(LOINC, c, d) for c, d in (known.also if known else ()))
    if reading["system"] == MDC:
        name = MDC_TO_LOINC.get(reading["code"], (reading["display"], None))[0]
        codings.append(_coding(MDC, reading["code"], name))
    return codings


def _coding(system: str, code: str, display: str | None) -> dict[str, Any]:
    return {"system": system, "code": code, **({"display": display} if display else {})}


def _add_codings(observation: dict[str, Any], codings: list[dict[str, Any]]) -> None:
    have = observation["code"]["coding"]
    seen = {(c["system"], c["code"]) for c in have}
    have.extend(c for c in codings if (c["system"], c["code"]) not in seen)


def _device(device: dict[str, Any], device_id: str) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Device",
        "id": resource_id("Device", device_id),
        "identifier": [{"value": device_id}],
    }
    for key, element in (("manufacturer", "manufacturer"), ("serial", "serialNumber")):
        if isinstance(device.get(key), str) and device[key].strip():
            resource[element] = device[key]
    if isinstance(device.get("type"), str) and device["type"].strip():
        resource["type"] = {"text": device["type"]}
    return resource
