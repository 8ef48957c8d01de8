"""DICOM header values (by keyword) read into FHIR shapes, with issues naming the element.

Each reader takes a pydicom Dataset and a keyword and returns the FHIR value or None;
a malformed value adds an Issue located at "Keyword (gggg,eeee)" and yields None.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from schemas.outcome import Issue

UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+")
_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?")
_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})")


def where(keyword: str) -> str:
    """The location of an element: its keyword and tag, e.g. "PatientID (0010,0020)"."""
    tag = tag_for_keyword(keyword)
    return f"{keyword} {Tag(tag)}" if tag is not None else keyword


def text(ds: Dataset, keyword: str, issues: list[Issue], *, required: bool = False) -> str | None:
    """The element's value as stripped text (the first of several), or None when empty."""
    try:
        value = ds.get(keyword)
    except Exception as exc:  # pydicom decodes lazily; any failure means a malformed value
        issues.append(Issue(f"cannot be read: {exc}", "structure", "error", where(keyword)))
        return None
    if isinstance(value, MultiValue):
        value = value[0] if len(value) else None
    result = str(value).strip() if value is not None else ""
    if not result and required:
        issues.append(Issue("required and missing or empty", "required", "error", where(keyword)))
    return result or None


def uid(ds: Dataset, keyword: str, issues: list[Issue]) -> str | None:
    """A required UID (digits and dots, at most 64 characters)."""
    value = text(ds, keyword, issues, required=True)
    if value is not None and not (len(value) <= 64 and UID.fullmatch(value)):
        issues.append(Issue(f"{value[:70]!r} is not a DICOM UID", "value", "error", where(keyword)))
        return None
    return value


def number(ds: Dataset, keyword: str, issues: list[Issue]) -> int | None:
    """An IS value as a FHIR unsignedInt; a negative one (legal in DICOM) is left out."""
    value = text(ds, keyword, issues)
    if value is None:
        return None
    try:
        parsed = int(value)
    except ValueError:
        issues.append(Issue(f"{value[:32]!r} is not an integer", "value", "error", where(keyword)))
        return None
    return parsed if parsed >= 0 else None


def day(ds: Dataset, keyword: str, issues: list[Issue]) -> date | None:
    """A DA value (YYYYMMDD)."""
    value = text(ds, keyword, issues)
    if value is None:
        return None
    try:
        if len(value) != 8 or not value.isdigit():
            raise ValueError(value)
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        issues.append(
            Issue(f"{value[:32]!r} is not a date (YYYYMMDD)", "value", "error", where(keyword))
        )
        return None


def moment(
    ds: Dataset, date_keyword: str, time_keyword: str, issues: list[Issue]
) -> tuple[str | None, datetime | None]:
    """A DA and TM pair as a FHIR dateTime, and the instant when the time zone is known.

    A FHIR dateTime with a time needs a UTC offset; DICOM gives one only in
    TimezoneOffsetFromUTC (0008,0201). Without it the dateTime is the date alone.
    """
    when = day(ds, date_keyword, issues)
    time = text(ds, time_keyword, issues)
    offset = text(ds, "TimezoneOffsetFromUTC", issues)
    if when is None:
        return None, None
    match = _TIME.fullmatch(time.replace(":", "")) if time else None
    if time and match is None:
        issues.append(
            Issue(
                f"{time[:32]!r} is not a time (HHMMSS.FFFFFF)",
                "value",
                "error",
                where(time_keyword),
            )
        )
    zone = _OFFSET.fullmatch(offset) if offset else None
    if offset and zone is None:
        issues.append(
            Issue(
                f"{offset[:32]!r} is not an offset (+HHMM)",
                "value",
                "error",
                where("TimezoneOffsetFromUTC"),
            )
        )
    if match is None or zone is None:
        return when.isoformat(), None
    hours, minutes = int(zone.group(2)), int(zone.group(3))
    sign = -1 if zone.group(1) == "-" else 1
    try:
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        instant = datetime(
            when.year,
            when.month,
            when.day,
            int(match.group(1)),
            int(match.group(2) or 0),
            int(match.group(3) or 0),
            int((match.group(4) or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        issues.append(Issue(f"not a valid time: {exc}", "value", "error", where(time_keyword)))
        return when.isoformat(), None
    return instant.isoformat(), instant


def human_name(ds: Dataset, keyword: str, issues: list[Issue]) -> dict[str, Any] | None:
    """A PN value (family^given^middle^prefix^suffix, alphabetic group) as a HumanName."""
    value = text(ds, keyword, issues)
    if value is None:
        return None
    parts = [p.strip() for p in value.split("=")[0].split("^")] + [""] * 5
    family, given, middle, prefix, suffix = parts[:5]
    name: dict[str, Any] = {}
    if family:
        name["family"] = family
    if given or middle:
        name["given"] = [g for g in (given, middle) if g]
    if prefix:
        name["prefix"] = [prefix]
    if suffix:
        name["suffix"] = [suffix]
    return name or None
