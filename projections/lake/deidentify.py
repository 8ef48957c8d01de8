"""De-identified copies of resources for research tables.

Direct identifiers are dropped (names, identifiers, telecom, addresses below state, photos,
contacts, narrative, notes, the display text of references); every id and reference is
replaced by an HMAC-SHA256 of "Type/id" under a secret key, so joins still work but ids
cannot be reversed or recomputed without the key; every date is shifted by a number of days
drawn from the same key and the patient, so intervals within one patient's record survive
while calendar dates do not. A date keeps its precision: "1980" stays a year.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date, timedelta
from typing import Any

DROP_TOP_LEVEL = frozenset({"name", "identifier", "telecom", "photo", "contact", "text", "note"})
KEEP_ADDRESS = ("state", "country")
MAX_SHIFT_DAYS = 365
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?(T.*)?$")
_NOT_DATES = frozenset({"code", "system", "value", "version", "id", "reference", "url", "display"})
_PATIENT_REFS = ("subject", "patient", "beneficiary")


class Deidentifier:
    """Rewrites resources with one secret key; the same input always gives the same output."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the de-identification secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    def resource_id(self, resource_type: str, resource_id: str) -> str:
        return self._mac(f"{resource_type}/{resource_id}")[:32]

    def shift_days(self, patient_key: str) -> int:
        """A non-zero number of days in [-MAX_SHIFT_DAYS, MAX_SHIFT_DAYS]: zero would leave the
        patient's real dates in the de-identified tables."""
        value = int(self._mac(f"date-shift|{patient_key}")[:8], 16) % (2 * MAX_SHIFT_DAYS)
        return value - MAX_SHIFT_DAYS if value < MAX_SHIFT_DAYS else value - MAX_SHIFT_DAYS + 1

    def key(self, resource_type: str) -> Any:
        """The id hash for one resource type, as a function of the id (silver `_resource_id`)."""
        return lambda rid: self.resource_id(resource_type, rid)

    def __call__(self, resource: dict[str, Any]) -> dict[str, Any]:
        rtype = str(resource.get("resourceType", ""))
        shift = timedelta(days=self.shift_days(_patient_of(resource)))
        out = {k: v for k, v in resource.items() if k not in DROP_TOP_LEVEL}
        if "address" in out:
            out["address"] = [
                {k: a[k] for k in KEEP_ADDRESS if k in a}
                for a in out["address"]
                if isinstance(a, dict)
            ]
        out = dict(self._walk(out, shift, None))
        if "id" in resource:
            out["id"] = self.resource_id(rtype, str(resource["id"]))
        return out

    def _walk(self, node: Any, shift: timedelta, key: str | None) -> Any:
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for k, v in node.items():
                if k == "reference" and isinstance(v, str):
                    out[k] = self._reference(v)
                elif k in ("display", "identifier") and "reference" in node:
                    continue  # a reference's display is often a person's name
                else:
                    out[k] = self._walk(v, shift, k)
            return out
        if isinstance(node, list):
            return [self._walk(v, shift, key) for v in node]
        if isinstance(node, str) and key not in _NOT_DATES:
            if len(node) == 4 and not _date_key(key):
                return node  # a bare year only where the element is a date (lot "2024" is not)
            return shift_date(node, shift)
        return node

    def _reference(self, reference: str) -> str:
        parts = reference.split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) < 2 or not parts[-2][:1].isupper():
            return self._mac(reference)[:32]  # urn:uuid:..., contained #ids: opaque
        return f"{parts[-2]}/{self.resource_id(parts[-2], parts[-1])}"


def _patient_of(resource: dict[str, Any]) -> str:
    """Whose dates these are: the patient a resource is about, else the resource itself."""
    if resource.get("resourceType") == "Patient":
        return f"Patient/{resource.get('id')}"
    for field in _PATIENT_REFS:
        ref = resource.get(field)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            parts = ref["reference"].split("/")
            if len(parts) >= 2 and parts[-2] == "Patient":
                return f"Patient/{parts[-1]}"
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _date_key(key: str | None) -> bool:
    return key is not None and (
        key.endswith(("Date", "DateTime", "date")) or key in ("start", "end", "started", "issued")
    )


def shift_date(text: str, shift: timedelta) -> str:
    """A FHIR date, dateTime or instant moved by `shift` days, same precision; else unchanged."""
    m = _DATE.match(text)
    if m is None or (m.group(4) and m.group(3) is None):
        return text
    year, month, day, rest = m.group(1), m.group(2), m.group(3), m.group(4) or ""
    try:
        moved = date(int(year), int(month or 7), int(day or 1)) + shift
    except ValueError:
        return text
    if month is None:
        return f"{moved.year:04d}"
    if day is None:
        return f"{moved.year:04d}-{moved.month:02d}"
    return f"{moved.isoformat()}{rest}"
