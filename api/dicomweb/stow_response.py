"""The STOW-RS answer (DICOM PS3.18 10.5): which instances were stored and which failed, as
DICOM JSON (application/dicom+json), and the HTTP status that goes with it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Failure Reason (0008,1197) values, from the Storage Service statuses of PS3.4.
CANNOT_UNDERSTAND = 0xC000  # not DICOM, no usable header
DOES_NOT_MATCH = 0xA900  # data set does not match (here: not of the study in the URL)
PROCESSING_FAILURE = 0x0110


@dataclass(frozen=True, slots=True)
class Outcome:
    sop_class_uid: str
    sop_instance_uid: str
    failure_reason: int | None = None  # None: stored

    def item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "00081150": {"vr": "UI", "Value": [self.sop_class_uid]}
            if self.sop_class_uid
            else {"vr": "UI"},
            "00081155": {"vr": "UI", "Value": [self.sop_instance_uid]}
            if self.sop_instance_uid
            else {"vr": "UI"},
        }
        if self.failure_reason is not None:
            item["00081197"] = {"vr": "US", "Value": [self.failure_reason]}
        return item


def stow_body(outcomes: list[Outcome]) -> dict[str, Any]:
    stored = [o.item() for o in outcomes if o.failure_reason is None]
    failed = [o.item() for o in outcomes if o.failure_reason is not None]
    body: dict[str, Any] = {}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}  # Failed SOP Sequence
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": stored}  # Referenced SOP Sequence
    return body


def stow_status(outcomes: list[Outcome]) -> int:
    """200 all stored, 202 some failed, 409 none stored (400 is for a malformed request)."""
    failed = sum(o.failure_reason is not None for o in outcomes)
    if not failed:
        return 200
    return 202 if failed < len(outcomes) else 409
