"""The device readings batch (POST /devices/readings): the one contract the gateway checks at
the edge and the processor reads by (processors/device_readings.py), so a batch answered 202
is never refused downstream for its content.

Shape (tests/corpus/device/bedside_monitor_batch.json is an example):
device {id, type?, manufacturer?, serial?, ...}, patient {system, value, assigner?},
readings [{system, code, display?, value, unit (UCUM), time (with a UTC offset)}].
Rules beyond the shape: a reading's system is LOINC or IEEE 11073 MDC and its code has that
system's form; its unit (after the usual aliases: bpm, mmHg, degC, ...) is a UCUM code, and
one the vital sign is measured in when carelog knows it; two readings of one measurement at
one instant (LOINC, or MDC mapped to LOINC) must not differ in value.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas.device_codes import LOINC, MDC, MDC_TO_LOINC, UNIT_ALIASES, VITAL_SIGNS
from schemas.fhir_string import FORBIDDEN_CONTROL
from schemas.outcome import Issue
from schemas.plausibility import PLAUSIBLE, implausible, wrong_unit
from schemas.terminology import loinc
from schemas.terminology.ucum import problem as ucum_problem

_CODE_SHAPE = {LOINC: re.compile(r"\d{1,7}-\d"), MDC: re.compile(r"\d{1,10}")}


def _fhir_string(value: str) -> str:
    bad = FORBIDDEN_CONTROL.search(value)
    if bad:
        raise PydanticCustomError(
            "value", f"holds the control character U+{ord(bad.group()):04X}, which FHIR forbids"
        )
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("value", "a non-empty string is expected")
    return _fhir_string(value)


Text = Annotated[str, AfterValidator(_not_blank)]
Optional = Annotated[str, AfterValidator(_fhir_string)]


class Device(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: Text = Field(max_length=128, description="The device's own identifier.")
    type: Optional | None = Field(
        None, max_length=128, description="Kind of device, e.g. bedside-monitor."
    )
    manufacturer: Optional | None = Field(None, max_length=256)
    serial: Optional | None = Field(None, max_length=128)


class PatientRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: Text = Field(
        max_length=256, pattern=r"^\S+$", description="Identifier system (URI or urn:oid)."
    )
    value: Text = Field(max_length=128, description="The patient's identifier (e.g. MRN).")
    assigner: Text | None = Field(None, max_length=128, description="Assigning authority.")


class Reading(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # In this order: a field's rules depend on the ones before it (validators see those).
    system: Text = Field(max_length=256, description=f"Code system: {LOINC} or {MDC}.")
    code: Text = Field(max_length=64, description="LOINC or IEEE 11073 MDC code.")
    display: Text | None = Field(None, max_length=256)
    unit: Text = Field(max_length=64, description="UCUM unit code, e.g. /min, %, mm[Hg], Cel.")
    value: int | float = Field(description="The measured value (a JSON number).")
    time: datetime = Field(description="When measured, ISO 8601 with a UTC offset.")

    @property
    def loinc(self) -> str | None:
        """The LOINC code: as sent, or the one the MDC code maps to."""
        if self.system == LOINC:
            return self.code
        return MDC_TO_LOINC.get(self.code, (None, None))[1]

    @property
    def ucum(self) -> str:
        return UNIT_ALIASES.get(self.unit, self.unit)

    @field_validator("system")
    @classmethod
    def _known_system(cls, value: str) -> str:
        if value not in _CODE_SHAPE:
            raise PydanticCustomError("not-supported", f"code system must be {LOINC} or {MDC}")
        return value

    @field_validator("code")
    @classmethod
    def _code_form(cls, value: str, info: ValidationInfo) -> str:
        system = info.data.get("system", "")
        shape = _CODE_SHAPE.get(system)
        problem = loinc.problem(value) if system == LOINC else None
        if shape is not None and not shape.fullmatch(value):
            problem = "not a code of its system"
        if problem:
            raise PydanticCustomError("code-invalid", f"{value[:32]!r}: {problem}")
        return value

    @field_validator("value", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        # JSON true/false must not pass as 1/0, nor a numeric string as a number.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PydanticCustomError("value", "a finite JSON number is expected")
        if isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError("value", "a finite JSON number is expected")
        return value

    @field_validator("unit")
    @classmethod
    def _ucum_unit(cls, value: str, info: ValidationInfo) -> str:
        ucum = UNIT_ALIASES.get(value, value)
        system, code = info.data.get("system"), info.data.get("code")
        loinc = code if system == LOINC else MDC_TO_LOINC.get(code or "", (None, None))[1]
        known = VITAL_SIGNS.get(loinc) if loinc else None
        if known is not None and ucum not in known.units:
            units = ", ".join(sorted(known.units))
            raise PydanticCustomError(
                "value", f"{value!r} is not a unit of {known.display} ({units})"
            )
        plausible = PLAUSIBLE.get(loinc) if loinc else None
        problem = (wrong_unit(plausible, ucum) if plausible else None) or ucum_problem(ucum)
        if problem:
            raise PydanticCustomError("value", f"{value[:32]!r}: {problem}")
        return value

    @field_validator("value")
    @classmethod
    def _plausible(cls, value: float, info: ValidationInfo) -> float:
        system, code, unit = (info.data.get(k) for k in ("system", "code", "unit"))
        if unit is None:  # the unit was refused: the range cannot be checked
            return value
        loinc = code if system == LOINC else MDC_TO_LOINC.get(code or "", (None, None))[1]
        plausible = PLAUSIBLE.get(loinc) if loinc else None
        ucum = UNIT_ALIASES.get(unit, unit)
        problem = implausible(plausible, ucum, value) if plausible else None
        if problem:
            raise PydanticCustomError("value", problem)
        return value

    @field_validator("time", mode="before")
    @classmethod
    def _instant(cls, value: object) -> datetime:
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise PydanticCustomError(
                "value",
                "a date and time with a UTC offset is expected (2026-11-03T14:00:00-05:00)",
            )
        return parsed


class DeviceBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device
    patient: PatientRef
    readings: list[Reading] = Field(min_length=1, max_length=10_000)


class BatchRefused(ValueError):
    """The batch breaks the contract; `issues` name each field (readings[2].unit) at fault."""

    def __init__(self, issues: list[Issue], *, not_json: bool = False) -> None:
        super().__init__("; ".join(i.diagnostics for i in issues))
        self.issues = issues
        self.not_json = not_json


def measurement_key(device_id: str, reading: Reading) -> tuple[str, str, str]:
    """What one measurement is: the device, the LOINC code (else the code) and the instant."""
    return device_id, reading.loinc or reading.code, reading.time.astimezone(UTC).isoformat()


def read_batch(body: bytes) -> DeviceBatch:
    """The batch, or BatchRefused with one issue per field at fault (`not_json` when the body
    is no JSON at all)."""
    try:
        batch = DeviceBatch.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        issues = [
            Issue(f"{_where(e['loc'])}: {e['msg']}", _code(e["type"]), "error", _where(e["loc"]))
            for e in errors
        ]
        raise BatchRefused(
            issues, not_json=any(e["type"] == "json_invalid" for e in errors)
        ) from None
    issues = _contradictions(batch)
    if issues:
        raise BatchRefused(issues)
    return batch


def _contradictions(batch: DeviceBatch) -> list[Issue]:
    seen: dict[tuple[str, str, str], tuple[int, Any]] = {}
    issues = []
    for index, reading in enumerate(batch.readings):
        measured = (reading.value, reading.ucum)
        key = measurement_key(batch.device.id, reading)
        earlier = seen.setdefault(key, (index, measured))
        if earlier[1] != measured:
            issues.append(
                Issue(
                    f"contradicts readings[{earlier[0]}]: same measurement and time, another value",
                    "conflict",
                    "error",
                    f"readings[{index}].value",
                )
            )
    return issues


_STRUCTURE = {"json_invalid", "json_type", "model_type", "model_attributes_type", "list_type",
              "dict_type", "extra_forbidden"}  # fmt: skip


def _code(error_type: str) -> str:
    """The OperationOutcome issue code of a pydantic error type (ours are already codes)."""
    if error_type == "missing":
        return "required"
    if error_type in _STRUCTURE:
        return "structure"
    if error_type in ("not-supported", "code-invalid", "value"):
        return error_type
    return "value"


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"
