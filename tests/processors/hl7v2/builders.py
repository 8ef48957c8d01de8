"""Inline HL7 v2 messages for the mapping-rule tests: one MSH and PID, segments built from
{position: value}, and a mapping that must give valid resources."""

from __future__ import annotations

from typing import Any

from processors.hl7v2.mapping import map_hl7v2
from processors.validation import resource_issues

MSH = "MSH|^~\\&|APP|FAC|CARELOG|CARELOG|20260101120000-0500||{type}|C1|P|2.5.1"
PID = "PID|1||P1^^^FAC^MR||Doe^Jane||19800101|F"


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment from {position: value}, so that no test miscounts its pipes."""
    return "|".join([name, *(fields.get(i, "") for i in range(1, max(fields) + 1))])


def message(mtype: str, *segments: str) -> bytes:
    """MSH (MSH-9 = `mtype`) then `segments`, CR-separated."""
    return "\r".join([MSH.format(type=mtype), *segments]).encode()


def mapped(mtype: str, *segments: str) -> list[dict[str, Any]]:
    """The resources of `message(mtype, *segments)`, each checked valid."""
    resources = map_hl7v2(message(mtype, *segments)).resources
    assert [i for r in resources for i in resource_issues(r)] == []
    return resources
