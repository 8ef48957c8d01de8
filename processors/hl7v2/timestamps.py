"""HL7 v2 DTM/TS, DT and TM values -> FHIR dateTime, instant, date and time.

HL7: YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]. FHIR keeps the precision of a date
(YYYY, YYYY-MM, YYYY-MM-DD) but a time needs seconds and an offset, so HH and HHMM are
completed with zeros and a missing offset is taken from the context's time zone at that
instant (DST-aware). Fractions are kept digit for digit.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from .errors import MappingError

_DTM = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})?(?P<d>\d{2})?(?P<h>\d{2})?(?P<mi>\d{2})?(?P<s>\d{2})?"
    r"(?:\.(?P<f>\d{1,4}))?(?P<tz>[+-]\d{4})?$",
    re.ASCII,  # HL7 digits are 0-9: not "٢٠٢٦"
)
_TM = re.compile(
    r"^(?P<h>\d{2})(?P<mi>\d{2})?(?P<s>\d{2})?(?:\.(?P<f>\d{1,4}))?(?P<tz>[+-]\d{4})?$", re.ASCII
)


def _offset(tz: str) -> timedelta:
    sign = -1 if tz[0] == "-" else 1
    hours, minutes = int(tz[1:3]), int(tz[3:5])
    if hours > 14 or minutes > 59:
        raise ValueError(f"offset {tz} out of range")
    return sign * timedelta(hours=hours, minutes=minutes)


def _fmt_offset(delta: timedelta) -> str:
    total = int(delta.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    total = abs(total)
    return f"{sign}{total // 60:02d}:{total % 60:02d}"


def to_datetime(value: str, zone: ZoneInfo, location: str = "", *, instant: bool = False) -> str:
    """A v2 DTM/TS (TS-1 only) as a FHIR dateTime (or instant, which needs seconds)."""
    try:
        return _fhir_datetime(value.strip(), zone, instant)
    except _NotDTM:
        raise MappingError(location or "DTM", f"{value!r} is not an HL7 date/time") from None
    except (ValueError, TypeError) as exc:
        raise MappingError(location or "DTM", f"{value!r}: {exc}") from exc


_UTC = ZoneInfo("UTC")  # any zone: a date's offset is dropped with its time


class _NotDTM(Exception):
    """The text does not have the form of a DTM."""


@lru_cache(maxsize=4096)
def _fhir_datetime(text: str, zone: ZoneInfo, instant: bool) -> str:
    """The conversion itself, remembered: a message repeats its times (MSH-7, OBR-7, each
    OBX-14), and so does a stream of messages. Raises _NotDTM, ValueError or TypeError."""
    m = _DTM.match(text)
    if m is None:
        raise _NotDTM
    y, mo, d, h, mi, s, f, tz = m.group("y", "mo", "d", "h", "mi", "s", "f", "tz")
    date(int(y), int(mo or 1), int(d or 1))
    if h is None:
        if tz:
            _offset(tz)  # dropped with the time, yet it must be an offset
        if instant:
            raise ValueError("an instant needs a time to the second")
        return "-".join(p for p in (y, mo, d) if p)
    if instant and s is None:
        raise ValueError("an instant needs a time to the second")
    hh, mm, ss = int(h), int(mi or 0), int(s or 0)
    local = datetime(int(y), int(mo), int(d), hh, mm, ss)  # validates the ranges
    offset = _offset(tz) if tz else local.replace(tzinfo=zone).utcoffset() or timedelta(0)
    frac = f".{f}" if f else ""
    return f"{y}-{mo}-{d}T{hh:02d}:{mm:02d}:{ss:02d}{frac}{_fmt_offset(offset)}"


def to_date(value: str, location: str = "") -> str:
    """A v2 DT (or the date part of a DTM) as a FHIR date, keeping its precision. The time
    part is dropped, yet checked as a DTM's: "2026010125" (hour 25) is no date either."""
    try:
        return _fhir_datetime(value.strip(), _UTC, False).partition("T")[0]
    except _NotDTM:
        raise MappingError(location or "DT", f"{value!r} is not an HL7 date") from None
    except (ValueError, TypeError) as exc:
        raise MappingError(location or "DT", f"{value!r}: {exc}") from exc


def to_time(value: str, location: str = "") -> str:
    """A v2 TM as a FHIR time (hh:mm:ss[.f]); FHIR time has no offset, so it is dropped."""
    m = _TM.match(value.strip())
    if m is None:
        raise MappingError(location or "TM", f"{value!r} is not an HL7 time")
    h, mi, s, f = m.group("h", "mi", "s", "f")
    if int(h) > 23 or int(mi or 0) > 59 or int(s or 0) > 59:
        raise MappingError(location or "TM", f"{value!r} is out of range")
    return f"{h}:{mi or '00'}:{s or '00'}" + (f".{f}" if f else "")


def to_utc(fhir_datetime: str) -> datetime | None:
    """The UTC instant of a FHIR dateTime with a time (None for a bare date)."""
    if "T" not in fhir_datetime:
        return None
    return datetime.fromisoformat(fhir_datetime).astimezone(UTC)
