"""Versions are assigned once per change: unchanged content emits nothing, deletes and
If-Match behave as a FHIR server's would, and the output is deterministic."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import orjson
import pytest

from processors.canonical import canonical_json, content_hash
from processors.versioning import VersionConflict, next_change
from schemas.events import Operation, ResourceTranslated

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
_offsets = itertools.count(41)  # each translated event comes from the next inbound offset


def translated(resource: dict[str, object] | None, op: Operation = Operation.upsert,
               if_match: int | None = None, inbound: str = "in-1",
               offset: int | None = None, if_none_exist: bool = False) -> ResourceTranslated:  # fmt: skip
    return ResourceTranslated(
        event_id="t-1", resource_type="Patient", resource_id="p1", operation=op,
        resource=canonical_json(resource) if resource is not None else None, if_match=if_match,
        inbound_event_id=inbound, inbound_topic="carelog.inbound.hl7v2", inbound_partition=2,
        inbound_offset=next(_offsets) if offset is None else offset, received_at=T0, mapping_version="test/1",
        if_none_exist=if_none_exist,
    )  # fmt: skip


PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}


def test_first_upsert_is_version_1_with_meta_and_lineage() -> None:
    change, state = next_change(translated(PATIENT, offset=41), None)
    assert change is not None and state is not None
    assert (state.version, state.content_hash, state.deleted) == (1, content_hash(PATIENT), False)
    body = orjson.loads(change.resource or "")
    assert body["meta"] == {"versionId": "1", "lastUpdated": "2026-11-25T12:00:00.000Z"}
    assert (change.inbound_event_id, change.inbound_partition, change.inbound_offset) == (
        "in-1",
        2,
        41,
    )
    assert change.recorded_at == T0 and change.key == "Patient/p1"


def test_same_content_again_emits_nothing() -> None:
    _, state = next_change(translated(PATIENT), None)
    change, again = next_change(translated(dict(PATIENT), inbound="in-2"), state)
    assert change is None and again is not None and again.version == state.version


def test_changed_content_emits_the_next_version() -> None:
    _, state = next_change(translated(PATIENT), None)
    change, after = next_change(translated({**PATIENT, "gender": "male"}), state)
    assert change is not None and change.version == 2 and after is not None and after.version == 2


def test_delete_then_recreate_keeps_counting() -> None:
    _, state = next_change(translated(PATIENT), None)
    deleted, state = next_change(translated(None, Operation.delete), state)
    assert deleted is not None and deleted.version == 2 and deleted.resource is None
    assert state is not None and (state.version, state.content_hash, state.deleted) == (2, "", True)
    again, _ = next_change(translated(None, Operation.delete), state)
    assert again is None
    back, state = next_change(translated(PATIENT), state)
    assert back is not None and back.version == 3 and back.operation is Operation.upsert


def test_deleting_what_never_existed_changes_nothing() -> None:
    assert next_change(translated(None, Operation.delete), None) == (None, None)


def test_if_match_must_name_the_current_version() -> None:
    _, state = next_change(translated(PATIENT), None)
    ok, _ = next_change(translated({**PATIENT, "active": True}, if_match=1), state)
    assert ok is not None and ok.version == 2
    with pytest.raises(VersionConflict, match="expects version 3, current is 1"):
        next_change(translated(PATIENT, if_match=3), state)


def test_a_conditional_create_of_a_live_resource_emits_nothing() -> None:
    """If-None-Exist: identical concurrent creates converge on one resource, one version;
    one with other content leaves the existing resource as it is (create, never update)."""
    first, state = next_change(translated(PATIENT, if_none_exist=True), None)
    assert first is not None and first.version == 1
    for body in (PATIENT, {**PATIENT, "gender": "male"}):
        change, after = next_change(translated(body, if_none_exist=True), state)
        assert change is None and after is not None
        assert (after.version, after.content_hash) == (1, content_hash(PATIENT))


def test_a_conditional_create_of_a_deleted_resource_creates_it_again() -> None:
    _, state = next_change(translated(PATIENT), None)
    _, state = next_change(translated(None, Operation.delete), state)
    back, state = next_change(translated(PATIENT, if_none_exist=True), state)
    assert back is not None and back.version == 3 and back.operation is Operation.upsert


def test_if_none_match_star_refuses_an_existing_resource() -> None:
    """If-None-Match: * travels as if_match=0: the write expects no current version."""
    created, state = next_change(translated(PATIENT, if_match=0), None)
    assert created is not None and created.version == 1
    with pytest.raises(VersionConflict, match=r"Patient/p1 exists \(version 1\)"):
        next_change(translated({**PATIENT, "active": True}, if_match=0), state)


def test_replay_yields_identical_changes() -> None:
    first, _ = next_change(translated(PATIENT, offset=7), None)
    second, _ = next_change(translated(PATIENT, offset=7), None)
    assert first == second


def test_a_redelivered_inbound_position_changes_nothing() -> None:
    """After a crash Faust may deliver an event whose output was committed already."""
    _, state = next_change(translated(PATIENT, offset=100), None)
    _, state = next_change(translated({**PATIENT, "gender": "male"}, offset=101), state)
    again, after = next_change(translated(PATIENT, offset=100), state)
    assert again is None and after == state


def test_meta_version_fields_do_not_count_as_content() -> None:
    stamped = {**PATIENT, "meta": {"versionId": "7", "lastUpdated": "2020-01-01T00:00:00Z"}}
    assert content_hash(stamped) == content_hash(PATIENT)
    assert content_hash({**PATIENT, "meta": {"profile": ["x"]}}) != content_hash(PATIENT)
