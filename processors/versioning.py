"""The versioning stage as a pure function: last state of a resource + what was translated ->
the ResourceChanged to append (or nothing), and the new state.

Versions are assigned here and only here, one key at a time, so they never skip or repeat.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import orjson

from processors.canonical import canonical_json, content_hash
from processors.ids import uuid5_text
from processors.imaging_study_merge import merge_imaging_study
from processors.lineage import lineage_of
from processors.version_policy import Policy, policy_for
from schemas.events import Operation, ResourceChanged, ResourceTranslated

CHANGE_NAMESPACE = uuid.UUID("5b0c0e9e-7d0f-4c43-9f55-1f7f9a0f3c21")


@dataclass(frozen=True, slots=True)
class VersionState:
    """What the versioning stage remembers per ResourceType/id.

    `applied` holds, per inbound topic:partition, the last inbound offset applied to this
    resource. Faust can commit an event's outputs in one transaction and its input offset in
    the next, so after a crash an event may come again: one whose inbound position was
    applied already changes nothing (the output is recorded with the input position).

    `resource` (the current body, without meta) is kept only for keys whose sources merge
    into the current resource (processors/version_policy.py), so the state stays small; a
    change record carries the state after it (processors/version_store.py).

    `key_id` is the data key the change carrying this state was sealed with: once it is
    shredded (`carelog erase`), the state is `erased()`.
    """

    version: int
    content_hash: str
    deleted: bool
    applied: dict[str, int] = field(default_factory=dict)
    resource: dict[str, Any] | None = None
    key_id: str | None = None

    def seen(self, translated: ResourceTranslated) -> bool:
        position = self.applied.get(_source(translated))
        return position is not None and translated.inbound_offset <= position

    def after(self, translated: ResourceTranslated) -> VersionState:
        """This state with `translated`'s inbound position applied."""
        return VersionState(
            self.version, self.content_hash, self.deleted, _applied(self, translated),
            self.resource, self.key_id,
        )  # fmt: skip

    def sealed_with(self, key_id: str | None) -> VersionState:
        return VersionState(
            self.version, self.content_hash, self.deleted, self.applied, self.resource, key_id
        )

    def erased(self) -> VersionState:
        """The state once its resource was erased: as a deletion, with no content. The
        version goes on; a resource sent again is new, not a repeat of what was erased (with
        the erased content hash kept, the same content would change nothing, and the store,
        which no longer has it, would never get it back; a merging key would merge the new
        source into the erased body)."""
        return VersionState(self.version, "", True, self.applied, None, None)


def _applied(state: VersionState | None, translated: ResourceTranslated) -> dict[str, int]:
    # built field by field, not by dataclasses.replace: that costs several times more, and
    # runs once per record versioned
    applied = state.applied if state is not None else {}
    return {**applied, _source(translated): translated.inbound_offset}


def _source(translated: ResourceTranslated) -> str:
    return f"{translated.inbound_topic}:{translated.inbound_partition}"


class VersionRefused(ValueError):
    """The versioning stage refuses this change; `code` is the FHIR issue type it reports."""

    code: ClassVar[str] = "invalid"


class VersionConflict(VersionRefused):
    """If-Match named a version that is not the current one, or If-None-Match: * (if_match
    0) met an existing resource (HTTP 412)."""

    code: ClassVar[str] = "conflict"


class AppendOnlyViolation(VersionRefused):
    """A change to a recorded append-only resource (an AuditEvent): they are never rewritten."""

    code: ClassVar[str] = "forbidden"


def lineage_id(translated: ResourceTranslated, version: int) -> str:
    name = f"{translated.inbound_event_id}|{translated.key}|{version}"
    return uuid5_text(CHANGE_NAMESPACE, name)


def with_meta(resource: dict[str, Any], version: int, recorded_at: datetime) -> dict[str, Any]:
    meta = dict(resource.get("meta", {}))
    meta["versionId"] = str(version)
    meta["lastUpdated"] = recorded_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {**resource, "meta": meta}


def next_change(
    translated: ResourceTranslated, previous: VersionState | None
) -> tuple[ResourceChanged | None, VersionState | None]:
    """The change to append and the state after it; (None, state) when nothing changed."""
    if previous is not None and previous.seen(translated):
        return None, previous  # a redelivery after a crash: applied already
    live = previous if previous is not None and not previous.deleted else None
    if translated.if_match is not None and translated.if_match != (live.version if live else 0):
        raise VersionConflict(_conflict(translated, live))
    version = (previous.version if previous else 0) + 1
    policy = policy_for(translated)

    if translated.operation is Operation.delete:
        if policy is Policy.APPEND_ONLY:
            raise AppendOnlyViolation(
                f"{translated.key}: {translated.resource_type} is append-only; "
                "a recorded one is never deleted"
            )
        if live is None:  # deleting what does not exist changes nothing
            return None, previous.after(translated) if previous else None
        change = _change(translated, version, Operation.delete, "", None)
        return change, _state(previous, translated, version, "", deleted=True)

    assert translated.resource is not None, "an upsert carries its resource"
    resource = orjson.loads(translated.resource)
    if live is not None and policy is Policy.CREATE_ONLY:
        return None, live.after(translated)
    if live is not None and live.resource is not None and policy is Policy.MERGE:
        resource = merge_imaging_study(live.resource, resource)
    digest = content_hash(resource)
    if live is not None and live.content_hash == digest:
        return None, live.after(translated)
    if live is not None and policy is Policy.APPEND_ONLY:
        raise AppendOnlyViolation(
            f"{translated.key}: {translated.resource_type} is append-only; version "
            f"{live.version} is recorded and is never replaced"
        )
    body = canonical_json(with_meta(resource, version, translated.received_at))
    change = _change(translated, version, Operation.upsert, digest, body)
    kept = resource if policy is Policy.MERGE else None
    return change, _state(previous, translated, version, digest, deleted=False, resource=kept)


def _conflict(translated: ResourceTranslated, live: VersionState | None) -> str:
    if translated.if_match == 0 and live is not None:  # If-None-Match: *
        return (f"{translated.key} exists (version {live.version}) and the write asked to "
                "create it only if it did not (If-None-Match: *)")  # fmt: skip
    return (f"{translated.key}: If-Match expects version {translated.if_match}, "
            f"current is {live.version if live else 'none'}")  # fmt: skip


def _change(
    translated: ResourceTranslated,
    version: int,
    operation: Operation,
    digest: str,
    resource: str | None,
) -> ResourceChanged:
    """The ResourceChanged of one new version, with its lineage and times from the source."""
    return ResourceChanged(
        event_id=lineage_id(translated, version),
        resource_type=translated.resource_type,
        resource_id=translated.resource_id,
        version=version,
        operation=operation,
        content_hash=digest,
        recorded_at=translated.received_at,
        resource=resource,
        **lineage_of(translated),
    )


def _state(
    previous: VersionState | None,
    translated: ResourceTranslated,
    version: int,
    digest: str,
    deleted: bool,
    resource: dict[str, Any] | None = None,
) -> VersionState:
    return VersionState(version, digest, deleted, _applied(previous, translated), resource)
