"""SNOMED CT identifiers: 6-18 digits, no leading zero, a valid partition, Verhoeff check digit."""

from __future__ import annotations

_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)
# Partition identifiers: 0x short-format, 1x long-format (extensions) for concept/description/relationship.
_PARTITIONS = {"00", "01", "02", "10", "11", "12"}


def verhoeff_valid(digits: str) -> bool:
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def problem(code: str) -> str | None:
    """Why `code` is not a SNOMED CT identifier, or None when it is well formed."""
    if not code.isdigit() or not 6 <= len(code) <= 18 or code[0] == "0":
        return f"{code!r} is not a SNOMED CT identifier (6-18 digits, no leading zero)"
    if code[-3:-1] not in _PARTITIONS:
        return f"SNOMED CT {code!r} has an unknown partition identifier {code[-3:-1]!r}"
    if not verhoeff_valid(code):
        return f"SNOMED CT {code!r} fails its Verhoeff check digit"
    return None
