"""Read-your-writes: after appending a write, wait until the store shows what it did.

The store is polled (every POLL_SECONDS) for the changes and the rejection that carry the
inbound event's id. The wait ends when:

- the store has a rejection of the event: it is the answer (stage "version" with a
  "conflict" issue is a stale If-Match: 412);
- every target of the write has a change from the event: Applied, with those versions;
- the targets still without a change are writes the store already reflects (an update
  with the content the current version has, a delete of what is gone or never was, a
  conditional create whose resource exists) and
  CARELOG_FHIR_WRITE_UNCHANGED_SECONDS have passed: the versioning stage appends nothing
  for such a write, so after that long without a change or a rejection it is taken as
  unchanged and answered with the current version;
- CARELOG_FHIR_WRITE_WAIT_SECONDS pass: Pending (answered 202, the write is on the log).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from api.fhir.write_targets import Target
from projections.fhir_store import FhirStore, Rejection, StoredResource
from streams.settings import Settings

POLL_SECONDS = 0.02
_SERVER_META = ("versionId", "lastUpdated")


@dataclass(frozen=True, slots=True)
class Applied:
    """Per target (in order): the version the write made or found, and whether it changed."""

    results: list[tuple[StoredResource | None, bool]]


@dataclass(frozen=True, slots=True)
class Refused:
    rejection: Rejection


@dataclass(frozen=True, slots=True)
class Pending:
    pass


Outcome = Applied | Refused | Pending


def _content(resource: dict[str, Any]) -> dict[str, Any]:
    out = dict(resource)
    meta = {k: v for k, v in (out.pop("meta", None) or {}).items() if k not in _SERVER_META}
    if meta:
        out["meta"] = meta
    return out


def reflected(store: FhirStore, target: Target) -> bool:
    """The store already holds what `target` writes (so the log will get no change).

    A conditional create is answered by the resource it found whatever its content (the
    versioning stage leaves an existing one as it is); If-None-Match: * never is: the write
    either creates the resource or is refused."""
    if target.if_none_match:
        return False
    current = store.read(target.resource_type, target.resource_id)
    if target.if_none_exist:
        return current is not None and not current.deleted
    if target.method == "DELETE":
        return current is None or current.deleted
    if current is None or current.deleted or target.resource is None:
        return False
    sent = _content({**target.resource, "id": target.resource_id})
    return _content(orjson.loads(current.json)) == sent


def _check(store: FhirStore, event_id: str, targets: Sequence[Target],
           settle: bool) -> Outcome | None:  # fmt: skip
    rejection = store.rejection_for_inbound(event_id)
    if rejection is not None:
        return Refused(rejection)
    if not targets:  # the processors will refuse it (no entry names a resource)
        return None
    changes = {(t, i): v for t, i, v in store.change_for_inbound(event_id)}
    results: list[tuple[StoredResource | None, bool]] = []
    for target in targets:
        version = changes.get(target.key)
        if version is not None:
            results.append((store.vread(*target.key, version), True))
        elif settle and reflected(store, target):
            results.append((store.read(*target.key), False))
        else:
            return None
    return Applied(results)


async def wait_for(store: FhirStore, event_id: str, targets: Sequence[Target],
                   settings: Settings) -> Outcome:  # fmt: skip
    """Poll the store until the write shows, is refused, or the wait times out."""
    started = time.monotonic()
    deadline = started + settings.fhir.write_wait_seconds
    settle_at = started + settings.fhir.write_unchanged_seconds
    while True:
        now = time.monotonic()
        outcome = _check(store, event_id, targets, settle=now >= settle_at)
        if outcome is not None:
            return outcome
        if now >= deadline:
            return Pending()
        await asyncio.sleep(POLL_SECONDS)
