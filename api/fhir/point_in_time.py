"""The `_at` parameter (point in time) of read, history and search: parsed once, here.

`_at` is a FHIR date: `2026-11-03T10:00:00Z`, or a coarser `2026-11-03` (a whole day),
as the inclusive range of microseconds it stands for. A read or search answers the state
at the end of that range (the version current at 10:00:00.999999, or at the day's last
moment); history answers the versions current at some moment of it. A log position is
not accepted: versions record their lastUpdated, not the offset that made them.
"""

from __future__ import annotations

from starlette.requests import Request

from api.errors import BadRequest
from projections.fhir_store.fhir_dates import DateFormatError, date_range
from schemas.outcome import Issue


def at_range(request: Request) -> tuple[int, int] | None:
    """The `_at` of the request as (lo, hi) microseconds, None without one; else 400."""
    values = request.query_params.getlist("_at")
    if not values:
        return None
    if len(values) > 1:
        raise BadRequest(Issue("_at may be given once", code="value", location="_at"))
    return date_range_of(values[0])


def date_range_of(value: str) -> tuple[int, int]:
    """An `_at` value as (lo, hi) microseconds, else 400."""
    try:
        return date_range(value)
    except DateFormatError:
        raise BadRequest(Issue(f"_at must be a FHIR date or instant (2026-11-03T10:00:00Z), "
                               f"not {value[:64]!r}", code="value", location="_at")) from None  # fmt: skip
