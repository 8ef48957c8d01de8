"""SMART on FHIR system scopes, v1 (`system/Patient.write`) and v2 (`system/Patient.cud`).

Writes are made on behalf of systems, so only `system/` scopes count for them (reads take
patient/, user/ and system/ scopes: api/security/smart.py).
Non-FHIR channels are pseudo resource types that need their exact scope:
`system/hl7v2.write`, `system/device.write`, `system/dicom.write`; `system/*.write` covers
FHIR resource types only, so granting FHIR writes never opens the raw feeds by accident.
Creating an AuditEvent is one too, `system/audit.write` (api/fhir/write_requests.py): no FHIR
write scope, not even `system/AuditEvent.write` or `system/*.*`, adds to the audit trail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

AUDIT = "audit"  # the pseudo type of an AuditEvent create
ERASE = "erase"  # the pseudo type of Patient/{id}/$erase (api/fhir/erase_routes.py)
PSEUDO_TYPES = frozenset({"hl7v2", "device", "dicom", AUDIT, ERASE})  # system/<it>.write each
_V1 = {"write": "cud", "read": "rs", "*": "cruds"}
_V2 = re.compile(r"c?r?u?d?s?")


@dataclass(frozen=True, slots=True)
class Need:
    """What a request does: `action` is a SMART v2 letter (c, r, u, d, s) on `resource`."""

    resource: str
    action: str

    def __str__(self) -> str:
        if self.resource in PSEUDO_TYPES:
            return f"system/{self.resource}.write"
        return f"system/{self.resource}.{self.action} (or .write)"


def _letters(permission: str) -> str:
    if permission in _V1:
        return _V1[permission]
    return permission if permission and _V2.fullmatch(permission) else ""


def grants(scope: str, need: Need) -> bool:
    context, _, rest = scope.partition("/")
    if context != "system" or "?" in rest:  # granular (?param=) scopes cannot be enforced here
        return False
    resource, _, permission = rest.rpartition(".")
    if need.resource in PSEUDO_TYPES:
        return resource == need.resource and permission == "write"
    return resource in (need.resource, "*") and need.action in _letters(permission)


def missing(scopes: Iterable[str], needs: Iterable[Need]) -> list[Need]:
    """The needs no scope grants (empty when the request is allowed)."""
    held = list(scopes)
    return [n for n in needs if not any(grants(s, n) for s in held)]
