"""LOINC codes: shape NNNNN-C and the mod 10 check digit (LOINC Users' Guide, appendix)."""

from __future__ import annotations

import re

_SHAPE = re.compile(r"^(\d{1,7})-(\d)$")


def check_digit(number: str) -> int:
    """Mod 10 (Luhn) check digit of the part before the hyphen."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 0:  # odd positions from the right are doubled
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10


def problem(code: str) -> str | None:
    """Why `code` is not a LOINC code, or None when it is well formed (LP/LA parts accepted)."""
    if re.match(r"^L[APGL]\d{1,8}-\d$", code):
        number, digit = code[2:].split("-")
    else:
        m = _SHAPE.match(code)
        if m is None:
            return f"{code!r} is not a LOINC code (NNNNN-C)"
        number, digit = m.group(1), m.group(2)
    expected = check_digit(number)
    if int(digit) != expected:
        return f"LOINC {code!r} has check digit {digit}, expected {expected}"
    return None
