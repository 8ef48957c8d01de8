"""The values the FHIR store hands out: immutable, plain, JSON kept as the log had it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class StoredResource:
    """One version of one resource. `json` is None-free: a deleted version holds "" ."""

    resource_type: str
    id: str
    version: int
    deleted: bool
    last_updated: datetime
    json: str

    @property
    def key(self) -> str:
        return f"{self.resource_type}/{self.id}"


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One page of a search: matches in order, what _include/_revinclude added, the total."""

    matches: list[StoredResource]
    included: list[StoredResource] = field(default_factory=list)
    total: int | None = None  # None with _total=none
    next_offset: int | None = None  # pass as _offset for the next page; None on the last


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an inbound event was rejected downstream (from carelog.rejected)."""

    original_event_id: str
    event_id: str
    stage: str
    reason: str
    operation_outcome: str  # an OperationOutcome as JSON
    rejected_at: datetime
