"""Date ranges and normalized text: the fast arithmetic agrees with datetime and unicodedata."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.fhir_store.fhir_dates import DateFormatError, date_range, instant_us
from projections.fhir_store.index_values import normalize

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def reference_range(text: str) -> tuple[int, int] | None:
    """The same ranges with datetime arithmetic (None: not a valid date)."""
    match = _DATE.match(text.strip())
    if match is None:
        return None
    g = match.groupdict()
    try:
        year = int(g["y"])
        if g["m"] is None:
            last = datetime(year, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
            return _us(datetime(year, 1, 1, tzinfo=UTC)), _us(last)
        month = int(g["m"])
        if g["d"] is None:
            start = datetime(year, month, 1, tzinfo=UTC)
            if month == 12:
                return _us(start), _us(datetime(year, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))
            return _us(start), _us(datetime(year, month + 1, 1, tzinfo=UTC)) - 1
        start = datetime(year, month, int(g["d"]), tzinfo=UTC)
        if g["H"] is None:
            return _us(start), _us(start) + 86_400_000_000 - 1
        zone: tzinfo = UTC
        if g["tz"] and g["tz"] != "Z":
            sign = 1 if g["tz"][0] == "+" else -1
            zone = timezone(timedelta(minutes=sign * (int(g["tz"][1:3]) * 60 + int(g["tz"][4:6]))))
        moment = datetime(year, month, int(g["d"]), int(g["H"]), int(g["M"]), tzinfo=zone)
        if g["S"] is None:
            return _us(moment), _us(moment) + 60_000_000 - 1
        moment = moment.replace(second=int(g["S"]))
        if g["f"] is None:
            return _us(moment), _us(moment) + 999_999
        digits = g["f"][:6]
        low = _us(moment) + int(digits.ljust(6, "0"))
        return low, low + 10 ** (6 - len(digits)) - 1
    except (ValueError, OverflowError):
        return None


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


dates = st.builds(
    lambda y, m, d, H, M, S, f, tz, cut: f"{y:04d}-{m}-{d}T{H}:{M}:{S}{f}{tz}"[: cut or None],
    st.one_of(st.integers(1, 9999), st.sampled_from([0, 1, 1970, 2000, 2024, 9999])),
    _two(0, 13),
    _two(0, 32),
    _two(0, 25),
    _two(0, 61),
    _two(0, 61),
    st.sampled_from(["", ".5", ".123", ".123456", ".123456789"]),
    st.sampled_from(["", "Z", "+05:30", "-10:00", "+14:00", "-23:59", "+24:00", "+05:99"]),
    st.sampled_from([0, 4, 7, 10, 16]),
)


@settings(max_examples=3000, deadline=None)
@given(dates)
def test_date_range_agrees_with_datetime_arithmetic(text: str) -> None:
    expected = reference_range(text)
    if expected is None:
        with pytest.raises(DateFormatError):
            date_range(text)
    else:
        assert date_range(text) == expected


@pytest.mark.parametrize(
    "text",
    ["9999", "9999-12", "9999-12-31", "9999-12-31T23:59", "9999-12-31T23:59:59Z"],
)
def test_the_last_day_of_the_calendar_is_a_range_not_a_crash(text: str) -> None:
    low, high = date_range(text)
    assert low <= high == _us(datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))


def test_instants_and_invalid_dates() -> None:
    assert instant_us("1970-01-01T00:00:01.5+01:00") == -3_600_000_000 + 1_500_000
    for bad in ("2024-02-30", "2024-13", "2024-01-01T24:00", "2024-01-01T10:00+24:00", "x"):
        with pytest.raises(DateFormatError):
            date_range(bad)


def reference_normalize(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    decomposed = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(decomposed.casefold().split())


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=st.characters(max_codepoint=127))))
def test_normalize_agrees_with_full_unicode_folding(text: str) -> None:
    assert normalize(text) == reference_normalize(text)
