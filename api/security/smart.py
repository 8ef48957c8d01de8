"""SMART on FHIR scopes for reading: patient/, user/ and system/ contexts, v1 and v2.

`patient/Observation.read` (v1) or `patient/Observation.rs` (v2) lets a token holding a
`patient` claim read within that patient's compartment only; `user/` and `system/` scopes
read what the type allows, except that any token with a `patient` claim is kept to that
patient's compartment whatever its scopes say. Writes keep api/security/scopes.py (system/ only).
Granular scopes (`?category=...`) grant nothing here: they cannot be enforced yet.
"""

from __future__ import annotations

from collections.abc import Iterable

from api.errors import Forbidden
from api.security.auth import Principal, challenge
from api.security.scopes import Need, _letters

CONTEXTS = ("patient", "user", "system")


def grants(scope: str, need: Need, has_patient: bool) -> bool:
    context, _, rest = scope.partition("/")
    if context not in CONTEXTS or "?" in rest:
        return False
    if context == "patient" and not has_patient:
        return False  # patient/ scopes mean nothing without the patient they are about
    resource, _, permission = rest.rpartition(".")
    return resource in (need.resource, "*") and need.action in _letters(permission)


def lacking(principal: Principal, needs: Iterable[Need]) -> list[Need]:
    """The needs no scope of the token grants (empty when all are granted)."""
    has_patient = principal.patient is not None
    return [n for n in needs if not any(grants(s, n, has_patient) for s in principal.scopes)]


def require_read(principal: Principal, needs: Iterable[Need], checked: bool = True) -> None:
    """Raises 403 unless some scope grants each need (`checked=False`: auth is disabled)."""
    if not checked:
        return
    missing = lacking(principal, needs)
    if missing:
        wanted = " ".join(sorted({f"user/{n.resource}.{n.action}" for n in missing}))
        raise Forbidden(
            "insufficient scope: this request needs "
            + "; ".join(f"patient/, user/ or system/{n.resource}.{n.action} (or .read)"
                        for n in missing),
            headers=challenge("insufficient_scope", wanted),
        )  # fmt: skip
