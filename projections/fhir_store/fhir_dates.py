"""FHIR date, dateTime and instant values as ranges of microseconds since the epoch (UTC).

A FHIR date is a range, not a point: `2020` is all of 2020, `2020-03-04T10:15` the minute.
Both stored values and search values become inclusive integer ranges [low, high], so that
the comparisons of the FHIR search spec are integer comparisons in SQL. Values without a
time zone are read as UTC (the server's zone).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

MIN_US = -(2**62)  # an open-ended Period start
MAX_US = 2**62  # an open-ended Period end
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


# A dateTime to the second with a zone (every instant, most dateTimes): read by
# datetime.fromisoformat, which checks the same fields, in a tenth of the time.
_FULL = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")
_EPOCH_NAIVE = datetime(1970, 1, 1)
_ONE_US = timedelta(microseconds=1)


class DateFormatError(ValueError):
    """Not a FHIR date, dateTime or instant."""


_DAY_US = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _day_us(year: int, month: int, day: int) -> int:
    """Microseconds from the epoch to the start of that day (UTC); ValueError if invalid."""
    return (date(year, month, day).toordinal() - _EPOCH_ORDINAL) * _DAY_US


def _full_range(text: str, seconds: str, fraction: str | None, zone: str) -> tuple[int, int]:
    try:
        moment = (datetime.fromisoformat(seconds) - _EPOCH_NAIVE) // _ONE_US
    except ValueError as exc:  # month 13, February 30th, hour 24...
        raise DateFormatError(f"not a valid date: {text!r} ({exc})") from None
    if zone != "Z":
        offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000_000
        if offset >= _DAY_US:
            raise DateFormatError(
                f"not a valid date: {text!r} (the time zone offset must be under 24 hours)"
            )
        moment += offset if zone[0] == "-" else -offset
    if fraction is None:
        return moment, moment + 999_999
    digits = fraction[:6]
    low = moment + int(digits.ljust(6, "0"))
    return low, low + 10 ** (6 - len(digits)) - 1


def date_range(text: str) -> tuple[int, int]:
    """The inclusive microsecond range a FHIR date/dateTime/instant stands for."""
    full = _FULL.fullmatch(text) if len(text) >= 20 else None
    if full is not None:
        return _full_range(text, *full.groups())
    match = _DATE.match(text.strip())
    if match is None:
        raise DateFormatError(f"not a FHIR date or dateTime: {text!r}")
    y, m, d, hh, mm, ss, fraction, zone = match.groups()
    try:
        year = int(y)
        if m is None:
            start = _day_us(year, 1, 1)
            return start, _day_us(year, 12, 31) + _DAY_US - 1
        month = int(m)
        if d is None:
            start = _day_us(year, month, 1)
            if month == 12:
                return start, _day_us(year, 12, 31) + _DAY_US - 1
            return start, _day_us(year, month + 1, 1) - 1
        start = _day_us(year, month, int(d))
        if hh is None:
            return start, start + _DAY_US - 1
        hour, minute = int(hh), int(mm)
        if hour > 23 or minute > 59:
            raise ValueError("hour must be in 0..23 and minute in 0..59")
        offset = 0
        if zone is not None and zone != "Z":
            offset = (int(zone[1:3]) * 60 + int(zone[4:6])) * 60_000_000
            if offset >= _DAY_US:
                raise ValueError("the time zone offset must be under 24 hours")
            if zone[0] == "-":
                offset = -offset
        moment = start + (hour * 3600 + minute * 60) * 1_000_000 - offset
        if ss is None:
            return moment, moment + 59_999_999
        second = int(ss)
        if second > 59:
            raise ValueError("second must be in 0..59")
        moment += second * 1_000_000
        if fraction is None:
            return moment, moment + 999_999
        digits = fraction[:6]
        low = moment + int(digits.ljust(6, "0"))
        return low, low + 10 ** (6 - len(digits)) - 1
    except ValueError as exc:  # month 13, February 30th...
        raise DateFormatError(f"not a valid date: {text!r} ({exc})") from None


def instant_us(text: str) -> int:
    """The start of an instant, e.g. meta.lastUpdated."""
    return date_range(text)[0]


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)
