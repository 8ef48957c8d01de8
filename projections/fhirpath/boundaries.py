"""lowBoundary() and highBoundary() of decimals, dates, dateTimes and times (FHIRPath 3.0).

A value stands for every value its precision cannot tell apart: 1.0 for [0.95, 1.05], "1970-06"
for 1970-06-01 to 1970-06-30, a dateTime without a zone for every zone (+14:00 to -12:00).
"""

from __future__ import annotations

import calendar
import re
from decimal import Decimal
from typing import Any

_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")
_DATETIME = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_TIME = re.compile(r"^(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d+))?)?)?$")
DATE_KINDS = frozenset({"date", "dateTime", "instant", "time"})
NUMBER_KINDS = frozenset({"decimal", "integer", "positiveInt", "unsignedInt", "integer64"})


def _decimal(value: Any, high: bool) -> Any:
    if type(value) is bool or type(value) not in (int, float):
        return None
    exact = Decimal(repr(value)) if type(value) is float else Decimal(value)
    exponent = exact.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1)  # half a unit of the last digit
    return float(exact + half if high else exact - half)


def _day(year: str, month: str | None, day: str | None, high: bool) -> str:
    mm = month or ("12" if high else "01")
    last = calendar.monthrange(int(year), int(mm))[1]
    dd = day or (f"{last:02d}" if high else "01")
    return f"{year}-{mm}-{dd}"


def _clock(hh: str | None, mi: str | None, ss: str | None, frac: str | None, high: bool) -> str:
    top = high
    return (
        f"{hh or ('23' if top else '00')}:{mi or ('59' if top else '00')}:"
        f"{ss or ('59' if top else '00')}.{(frac or ('999' if top else '000'))[:3].ljust(3, '0')}"
    )


def boundary(value: Any, kind: str, high: bool) -> Any:
    """The boundary of one value of FHIR type `kind`, or None when it has none."""
    if kind in NUMBER_KINDS:
        return _decimal(value, high)
    if type(value) is not str:
        return None
    if kind == "date":
        m = _DATE.match(value)
        return _day(m.group(1), m.group(2), m.group(3), high) if m else None
    if kind in ("dateTime", "instant"):
        m = _DATETIME.match(value)
        if m is None:
            return None
        year, month, day, hh, mi, ss, frac, zone = m.groups()
        zone = zone or ("-12:00" if high else "+14:00")
        return f"{_day(year, month, day, high)}T{_clock(hh, mi, ss, frac, high)}{zone}"
    if kind == "time":
        m = _TIME.match(value)
        return _clock(m.group(1), m.group(2), m.group(3), m.group(4), high) if m else None
    return None
