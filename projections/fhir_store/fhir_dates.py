"""FHIR date, dateTime and instant values as ranges of microseconds since the epoch (UTC).

A FHIR date is a range, not a point: `2020` is all of 2020, `2020-03-04T10:15` the minute.
Both stored values and search values become inclusive integer ranges [low, high], so that
the comparisons of the FHIR search spec are integer comparisons in SQL. Values without a
time zone are read as UTC (the server's zone).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

MIN_US = -(2**62)  # an open-ended Period start
MAX_US = 2**62  # an open-ended Period end
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class DateFormatError(ValueError):
    """Not a FHIR date, dateTime or instant."""


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def date_range(text: str) -> tuple[int, int]:
    """The inclusive microsecond range a FHIR date/dateTime/instant stands for."""
    match = _DATE.match(text.strip())
    if match is None:
        raise DateFormatError(f"not a FHIR date or dateTime: {text!r}")
    g = match.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            start = datetime(year, 1, 1, tzinfo=UTC)
            return _us(start), _us(datetime(year + 1, 1, 1, tzinfo=UTC)) - 1
        month = int(g["m"])
        if g["d"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return _us(start), _us(end) - 1
        day = int(g["d"])
        if g["H"] is None:
            start = datetime(year, month, day, tzinfo=UTC)
            return _us(start), _us(start + timedelta(days=1)) - 1
        tz: tzinfo = UTC
        if g["tz"] and g["tz"] != "Z":
            sign = 1 if g["tz"][0] == "+" else -1
            hours, minutes = int(g["tz"][1:3]), int(g["tz"][4:6])
            tz = timezone(timedelta(minutes=sign * (hours * 60 + minutes)))
        moment = datetime(year, month, day, int(g["H"]), int(g["M"]), tzinfo=tz)
        if g["S"] is None:
            return _us(moment), _us(moment + timedelta(minutes=1)) - 1
        moment = moment.replace(second=int(g["S"]))
        if g["f"] is None:
            return _us(moment), _us(moment) + 999_999
        digits = g["f"][:6]
        low = _us(moment) + int(digits.ljust(6, "0"))
        return low, low + 10 ** (6 - len(digits)) - 1
    except ValueError as exc:  # month 13, February 30th...
        raise DateFormatError(f"not a valid date: {text!r} ({exc})") from None


def instant_us(text: str) -> int:
    """The start of an instant, e.g. meta.lastUpdated."""
    return date_range(text)[0]


def from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)
