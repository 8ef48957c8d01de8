"""The common contract of carelog's translators: source bytes in, FHIR R4 resources out.

Every translator (FHIR input, device readings, DICOM headers, HL7 v2) is a pure function
that returns a `Translation` or raises `TranslationError`; none validates its output: the
translate stage (`processors.translators`) runs the one validator on every translation. The
agents around them only read, call and write; the versioning stage turns each
`TranslatedResource` into a `ResourceChanged` event, and a `TranslationError` into a
`Rejected` one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from schemas.outcome import Issue, summary


@dataclass(frozen=True, slots=True)
class TranslatedResource:
    """One resource to write. `resource` is FHIR R4 JSON with resourceType and id, no meta."""

    resource: dict[str, Any]
    operation: Literal["upsert", "delete"] = "upsert"
    # Expected current version (from If-Match W/"n"; 0 from If-None-Match: *); checked by
    # the versioning stage.
    if_match: int | None = None
    # Where the resource was in the input (a FHIRPath such as "Bundle.entry[2].resource"),
    # to locate validation issues; None: its resourceType.
    where: str | None = field(default=None, compare=False)
    # A conditional create (If-None-Exist): the versioning stage leaves an existing resource
    # as it is.
    if_none_exist: bool = False

    @property
    def key(self) -> str:
        """`ResourceType/id`, the key of the resource on carelog.fhir.changes."""
        return f"{self.resource['resourceType']}/{self.resource['id']}"


@dataclass(frozen=True, slots=True)
class Translation:
    """What one inbound message means in FHIR."""

    resources: list[TranslatedResource]
    business_time: datetime | None  # when it happened per the source, if known
    mapping_version: str  # e.g. "device-fhir/1.0.0"
    # Optional input the translator dropped because it was malformed (severity warning).
    warnings: tuple[Issue, ...] = ()


class TranslationError(ValueError):
    """The input cannot be translated; `issues` name the field or FHIRPath at fault."""

    def __init__(self, issues: list[Issue]) -> None:
        if not issues:
            raise ValueError("TranslationError needs at least one issue")
        self.issues = list(issues)
        super().__init__(summary(*self.issues))
