"""SMART scope matching (pure)."""

from __future__ import annotations

import pytest

from api.security.scopes import Need, grants, missing


@pytest.mark.parametrize(
    ("scope", "need", "granted"),
    [
        ("system/Patient.write", Need("Patient", "c"), True),
        ("system/Patient.write", Need("Patient", "d"), True),
        ("system/Patient.write", Need("Patient", "r"), False),
        ("system/*.write", Need("Observation", "u"), True),
        ("system/*.*", Need("Observation", "d"), True),
        ("system/Patient.c", Need("Patient", "c"), True),
        ("system/Patient.c", Need("Patient", "u"), False),
        ("system/Patient.cruds", Need("Patient", "d"), True),
        ("system/Patient.dc", Need("Patient", "c"), False),  # v2 letters must be in order
        ("system/Patient.c?category=x", Need("Patient", "c"), False),
        ("patient/Patient.write", Need("Patient", "c"), False),
        ("user/*.write", Need("Patient", "c"), False),
        ("system/hl7v2.write", Need("hl7v2", "c"), True),
        ("system/*.write", Need("hl7v2", "c"), False),
        ("system/hl7v2.c", Need("hl7v2", "c"), False),
        ("system/device.write", Need("device", "c"), True),
        ("system/dicom.write", Need("dicom", "c"), True),
        ("system/dicom.write", Need("device", "c"), False),
        # creating an AuditEvent takes its own scope: no FHIR write scope grants it
        ("system/audit.write", Need("audit", "c"), True),
        ("system/*.write", Need("audit", "c"), False),
        ("system/*.*", Need("audit", "c"), False),
        ("system/AuditEvent.write", Need("audit", "c"), False),
        ("system/AuditEvent.c", Need("audit", "c"), False),
        ("system/audit.c", Need("audit", "c"), False),
    ],
)
def test_grants(scope: str, need: Need, granted: bool) -> None:
    assert grants(scope, need) is granted


def test_missing_lists_every_need_not_granted() -> None:
    needs = [Need("Patient", "c"), Need("Condition", "c"), Need("Patient", "d")]
    assert missing(["system/Patient.c"], needs) == needs[1:]
    assert missing(["system/*.write"], needs) == []


def test_the_audit_scope_is_named_in_full() -> None:
    assert str(Need("audit", "c")) == "system/audit.write"
