"""Parsing FHIR search values: OR lists, escapes, prefixes, token forms, numbers."""

from __future__ import annotations

import re
from decimal import Decimal

from projections.fhir_store.errors import SearchError
from projections.fhir_store.search_limits import MAX_OR_VALUES, MAX_VALUE_CHARS, decimal_in_range

PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
_PREFIXED = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=[0-9+\-.])")


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on `sep` not preceded by a backslash; escapes are kept for a later unescape."""
    if "\\" not in text:  # the usual value: nothing escaped (a char-by-char walk is slow)
        return text.split(sep)
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    return re.sub(r"\\([\\,|$])", r"\1", text)


def or_values(param: str, raw: str) -> list[str]:
    """The values of one parameter occurrence (a comma means OR), within the limits."""
    values = split_unescaped(raw, ",")
    if len(values) > MAX_OR_VALUES:
        raise SearchError(
            param, f"at most {MAX_OR_VALUES} comma-separated values, not {len(values)}"
        )
    if any(v == "" for v in values):
        raise SearchError(param, f"empty value in {raw[:100]!r}")
    if any(len(v) > MAX_VALUE_CHARS for v in values):
        raise SearchError(param, f"a value is at most {MAX_VALUE_CHARS} characters long")
    return values


def prefixed(param: str, value: str) -> tuple[str, str]:
    """(prefix, rest): `ge2020` -> ('ge', '2020'); no prefix means eq."""
    match = _PREFIXED.match(value)
    if match:
        return match.group(1), value[2:]
    return "eq", value


def token(value: str) -> tuple[str | None, str | None]:
    """(system, code) of a token value: `s|c`, `|c` (system ''), `s|` (code None), `c`."""
    parts = split_unescaped(value, "|")
    if len(parts) == 1:
        return None, unescape(parts[0])
    if len(parts) == 2:
        system, code = unescape(parts[0]), unescape(parts[1])
        return system, code or None
    raise SearchError("token", f"too many '|' in {value!r}")


def number(param: str, text: str) -> tuple[float, float, float]:
    """(value, low, high): the implicit range of the value's precision, e.g. 100 -> [99.5, 100.5)."""
    decimal = decimal_in_range(param, text)
    exponent = decimal.as_tuple().exponent
    assert isinstance(exponent, int)
    half = Decimal(5) * Decimal(10) ** (exponent - 1)
    return float(decimal), float(decimal - half), float(decimal + half)


def quantity(param: str, text: str) -> tuple[str, str, str | None, str | None]:
    """(prefix, number, system, code) of `[prefix]number[|system|code]`."""
    prefix, rest = prefixed(param, text)
    parts = split_unescaped(rest, "|")
    if len(parts) == 1:
        return prefix, parts[0], None, None
    if len(parts) == 3:
        system, code = unescape(parts[1]) or None, unescape(parts[2]) or None
        return prefix, parts[0], system, code
    raise SearchError(param, f"a quantity is number|system|code, not {text!r}")
