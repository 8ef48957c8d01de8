"""The device readings batch accepted on POST /devices/readings, checked at the edge.

Shape (tests/corpus/device/bedside_monitor_batch.json is an example):
device {id, type?, manufacturer?, serial?, ...}, patient {system, value, assigner?},
readings [{code, system, display?, value, unit (UCUM), time (with a UTC offset)}].
"""

from __future__ import annotations

import math
import re

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from api.errors import BadRequest, Unprocessable
from schemas.outcome import Issue

# UCUM case-sensitive codes are printable ASCII without spaces; this checks the shape only.
UCUM = re.compile(r"[!-~]{1,64}")


class Device(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str = Field(min_length=1, max_length=128, description="The device's own identifier.")
    type: str | None = Field(
        None, max_length=128, description="Kind of device, e.g. bedside-monitor."
    )
    manufacturer: str | None = Field(None, max_length=256)
    serial: str | None = Field(None, max_length=128)


class PatientRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system: str = Field(
        min_length=1, max_length=256, description="Identifier system (URI or urn:oid)."
    )
    value: str = Field(
        min_length=1, max_length=128, description="The patient's identifier (e.g. MRN)."
    )
    assigner: str | None = Field(None, max_length=128, description="Assigning authority.")


class Reading(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, description="LOINC or IEEE 11073 code.")
    system: str = Field(min_length=1, max_length=256, description="Code system URI.")
    display: str | None = Field(None, max_length=256)
    value: float = Field(description="The measured value (a number).")
    unit: str = Field(description="UCUM unit code, e.g. /min, %, mm[Hg], Cel.")
    time: AwareDatetime = Field(description="When measured, with a UTC offset.")

    @field_validator("value", mode="before")
    @classmethod
    def _number(cls, value: object) -> object:
        # JSON true/false must not pass as 1/0, nor a numeric string as a number.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("must be a JSON number")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value

    @field_validator("unit")
    @classmethod
    def _ucum(cls, value: str) -> str:
        if not UCUM.fullmatch(value):
            raise ValueError("must be a UCUM code: printable ASCII, no spaces")
        return value


class DeviceBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: Device
    patient: PatientRef
    readings: list[Reading] = Field(min_length=1, max_length=10_000)


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def validate_batch(body: bytes) -> DeviceBatch:
    """The batch, or 422 with one issue per field at fault (400 when not JSON at all)."""
    try:
        return DeviceBatch.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        issues = [
            Issue(f"{_where(e['loc'])}: {e['msg']}", code="value", location=_where(e["loc"]))
            for e in errors
        ]  # fmt: skip
        not_json = any(e["type"] == "json_invalid" for e in errors)
        raise (BadRequest if not_json else Unprocessable)(*issues) from None
