"""The limits of one FHIR search or history request, in one place.

Beyond them the store answers a SearchError (the API: 400 with an OperationOutcome naming the
parameter and the limit) instead of trying. They bound the work one request costs and the SQL
it becomes: SQLite refuses an expression tree deeper than 1000 (each parameter occurrence is
one AND-ed condition, each comma value one OR), more than 2000 ORDER BY terms, and integers
beyond 64 bits.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from projections.fhir_store.errors import SearchError

MAX_PARAMS = 100  # parameter occurrences in one search (URL and _search form body together)
MAX_OR_VALUES = 100  # comma-separated values (ORs) in one occurrence
MAX_VALUE_CHARS = 1000  # characters in one of those values
MAX_SORT_KEYS = 10  # keys in _sort
DEFAULT_COUNT = 20  # page size of a search without _count
MAX_COUNT = 1000  # largest _count of a search
MAX_HISTORY_COUNT = 1000  # largest _count of a history
MAX_OFFSET = 2**31  # largest _offset (search and history)
MAX_VERSION = 2**63 - 1  # largest version id (SQLite INTEGER)
MAX_CHAIN_DEPTH = 3  # links in a chained parameter (subject:Patient.organization.name)
MAX_INCLUDE_DEPTH = 3  # rounds of _include:iterate / _revinclude:iterate
MAX_NUMBER_EXPONENT = 300  # number and quantity values: 1e-300 <= |value| < 1e300, or 0


def whole_number(param: str, value: str, low: int, high: int) -> int:
    """`value` as an integer in [low, high], else SearchError naming `param` and the range."""
    try:
        number = int(value)
    except ValueError:
        raise SearchError(param, f"not an integer: {value[:40]!r}") from None
    if not low <= number <= high:
        raise SearchError(param, f"{param} must be between {low} and {high}")
    return number


def decimal_in_range(param: str, text: str) -> Decimal:
    """`text` as a finite Decimal within the number range, else SearchError."""
    try:
        decimal = Decimal(text)
    except InvalidOperation:
        raise SearchError(param, f"not a number: {text[:40]!r}") from None
    if not decimal.is_finite():
        raise SearchError(param, f"not a number: {text[:40]!r}")
    if decimal and not -MAX_NUMBER_EXPONENT <= decimal.adjusted() < MAX_NUMBER_EXPONENT:
        raise SearchError(
            param,
            f"{text[:40]} is out of range: numbers must be 0 or between "
            f"1e-{MAX_NUMBER_EXPONENT} and 1e{MAX_NUMBER_EXPONENT} in magnitude",
        )
    return decimal


def check_counts(params: list[tuple[str, str]]) -> None:
    """Refuse a search with more parameter occurrences than MAX_PARAMS."""
    if len(params) <= MAX_PARAMS:
        return
    names: dict[str, int] = {}
    for key, _ in params:
        names[key] = names.get(key, 0) + 1
    most = max(names, key=lambda k: names[k])
    raise SearchError(
        most,
        f"a search takes at most {MAX_PARAMS} parameters; this one has {len(params)} "
        f"({most} {names[most]} times)",
    )
