"""FHIR R4 OperationOutcome: the machine-readable reasons carried by Rejected events and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem. `location` names the place at fault: an HL7 field (PID-7) or a FHIRPath."""

    diagnostics: str
    code: str = (
        "invalid"  # http://hl7.org/fhir/issue-type: invalid, structure, required, value, ...
    )
    severity: str = "error"  # fatal | error | warning | information
    location: str | None = None

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.location:
            issue["location"] = [self.location]
            issue["expression"] = [self.location]
        return issue


def operation_outcome(*issues: Issue) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in issues]}


def outcome_json(*issues: Issue) -> str:
    return orjson.dumps(operation_outcome(*issues)).decode()


def summary(*issues: Issue) -> str:
    """One line for humans: the first issue, with its location."""
    first = issues[0]
    where = f"{first.location}: " if first.location else ""
    more = f" (+{len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{where}{first.diagnostics}{more}"
