"""ICD-10 / ICD-10-CM code shape: letter, digit, alphanumeric, then up to 4 after the dot."""

from __future__ import annotations

import re

_SHAPE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")


def problem(code: str) -> str | None:
    if _SHAPE.match(code):
        return None
    if re.match(r"^[A-Z][0-9][0-9A-Z][0-9A-Z]{1,4}$", code):
        return f"ICD-10 {code!r} lacks the dot after the category ({code[:3]}.{code[3:]})"
    return f"{code!r} is not an ICD-10 code (e.g. L03.115)"
