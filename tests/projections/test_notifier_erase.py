"""Erasure in the notifier's state: the notifications not yet delivered lose the erased
resources' content (they stay numbered), in the file and its write-ahead log, and a batch
matched before a shred and committed after it carries no content of the patient."""

from __future__ import annotations

from pathlib import Path

from projections.notifier.state import Batch, State
from streams.privacy.envelope import keystore

GONE = '{"resourceType":"Patient","id":"gone","name":[{"family":"Forgetme"}]}'
KEPT = '{"resourceType":"Patient","id":"kept","name":[{"family":"Keepme"}]}'


def _subscribed(state: State) -> None:
    state.commit(Batch({}, {"sub": ('{"resourceType":"Subscription"}', "active", None)}, []))


def _raw(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_erase_takes_the_content_out_of_the_events_not_yet_delivered(tmp_path: Path) -> None:
    state = State(tmp_path / "state.sqlite")
    _subscribed(state)
    state.commit(Batch({("t", 0): 1}, {}, [
        ("sub", "2024-01-01T00:00:00Z", "Patient", "gone", 1, GONE),
        ("sub", "2024-01-01T00:00:01Z", "Patient", "kept", 1, KEPT),
    ]))  # fmt: skip
    reader = State(tmp_path / "state.sqlite")  # the delivery loop's, open throughout
    assert len(reader.pending("sub", 10)) == 2
    assert b"Forgetme" in _raw(tmp_path / "state.sqlite")

    assert state.erase_resources({("Patient", "gone")}) == 1
    events = reader.pending("sub", 10)
    assert [(e.seq, e.resource_id, e.resource) for e in events] == [
        (1, "gone", None),
        (2, "kept", KEPT),
    ]
    assert b"Forgetme" not in _raw(tmp_path / "state.sqlite")
    assert state.erase_resources({("Patient", "gone")}) == 0  # run again: nothing left


def test_a_batch_matched_before_a_shred_commits_no_content_of_the_patient(tmp_path: Path) -> None:
    store = keystore()
    assert store is not None
    gone_key, _ = store.key_for("patient:gone-notified")
    kept_key, _ = store.key_for("patient:kept-notified")
    state = State(tmp_path / "state.sqlite")
    _subscribed(state)
    batch = Batch({("t", 0): 1}, {}, [
        ("sub", "2024-01-01T00:00:00Z", "Patient", "gone", 1, GONE),
        ("sub", "2024-01-01T00:00:01Z", "Patient", "kept", 1, KEPT),
    ], keys={("Patient", "gone"): gone_key, ("Patient", "kept"): kept_key})  # fmt: skip
    store.shred([gone_key])  # the erasure, after the batch was matched
    state.commit(batch)
    events = state.pending("sub", 10)
    assert [(e.resource_id, e.resource) for e in events] == [("gone", None), ("kept", KEPT)]
    assert b"Forgetme" not in _raw(tmp_path / "state.sqlite")
