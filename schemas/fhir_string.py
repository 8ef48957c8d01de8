"""What a FHIR string may hold: no code point below U+0020 but tab, LF and CR (R4 string).

One rule for the validator (processors/validation.py) and the input contracts that must not
let through what it would refuse (schemas/device_batch.py)."""

from __future__ import annotations

import re

FORBIDDEN_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
