"""Applying changes: versions, deletes, replays, offsets, rejections, lineage (no broker)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from projections.fhir_store import FhirStore, StoreError
from projections.fhir_store.extract import index_rows
from projections.fhir_store.rebuild import compare
from projections.fhir_store.runner import writer_lock
from tests.projections.fhir_store_support import Offsets, changed, rejected


def patient(pid: str, family: str) -> dict[str, object]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family}]}


def test_versions_history_vread_and_delete(tmp_path: Path) -> None:
    store = FhirStore.open(tmp_path / "s.sqlite")
    log = Offsets()
    store.applier().apply(
        log.records([changed(patient("a", "One"), 1), changed(patient("a", "Two"), 2)])
    )
    current = store.read("Patient", "a")
    assert current is not None and current.version == 2 and not current.deleted
    assert orjson.loads(current.json)["meta"]["versionId"] == "2"
    assert [r.id for r in store.search("Patient", [("family", "two")]).matches] == ["a"]
    assert store.search("Patient", [("family", "one")]).matches == []  # old index rows gone
    first = store.vread("Patient", "a", 1)
    assert first is not None and orjson.loads(first.json)["name"][0]["family"] == "One"

    store.applier().apply(log.records([changed(patient("a", "Two"), 3, delete=True)]))
    gone = store.read("Patient", "a")
    assert gone is not None and gone.deleted and gone.json == "" and gone.version == 3
    assert store.search("Patient", [("family", "two")]).matches == []
    versions, total = store.history("Patient", "a")
    assert total == 3 and [v.version for v in versions] == [3, 2, 1]
    assert store.history()[1] == 3
    assert store.read("Patient", "nobody") is None


def test_replayed_versions_and_offsets_change_nothing(tmp_path: Path) -> None:
    store = FhirStore.open(tmp_path / "s.sqlite")
    events = [changed(patient("b", "X"), 1), changed(patient("b", "Y"), 2)]
    records = list(Offsets().records(events))
    applier = store.applier()
    first = applier.apply(records)
    assert first.versions == 2
    again = applier.apply(records)  # the same offsets: skipped before decoding
    assert again.records == 0 and again.versions == 0
    replay = list(Offsets(partition=1).records([changed(patient("b", "X"), 1)]))
    replayed = applier.apply(replay)  # a new offset carrying an old version: a no-op fold
    assert replayed.skipped_versions == 1
    assert store.history("Patient", "b")[1] == 2
    assert store.applied_offsets() == {
        ("carelog.fhir.changes", 0): 1,
        ("carelog.fhir.changes", 1): 0,
    }
    # A fresh applier (as after a restart) starts from the stored offsets.
    assert store.applier().apply(records).records == 0


def test_rejections_and_lineage(tmp_path: Path) -> None:
    store = FhirStore.open(tmp_path / "s.sqlite")
    log = Offsets()
    store.applier().apply(log.records([
        changed(patient("c", "A"), 1, inbound_event_id="in-1"),
        changed({"resourceType": "Observation", "id": "o", "status": "final",
                 "code": {"text": "x"}}, 1, inbound_event_id="in-1"),
        rejected("in-2", "bad date"),
    ]))  # fmt: skip
    assert store.change_for_inbound("in-1") == [("Patient", "c", 1), ("Observation", "o", 1)]
    assert store.change_for_inbound("in-2") == []
    rejection = store.rejection_for_inbound("in-2")
    assert (
        rejection is not None and rejection.reason == "bad date" and rejection.stage == "validate"
    )
    assert orjson.loads(rejection.operation_outcome)["resourceType"] == "OperationOutcome"
    assert store.rejection_for_inbound("in-1") is None


def test_undecodable_records_are_skipped_but_counted(tmp_path: Path) -> None:
    store = FhirStore.open(tmp_path / "s.sqlite")
    applied = store.applier().apply([("carelog.fhir.changes", 0, 0, b"not avro")])
    assert applied.undecodable == 1
    assert store.applied_offsets() == {("carelog.fhir.changes", 0): 0}


def test_readonly_store_and_single_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with pytest.raises(StoreError):
        FhirStore.open(path, readonly=True)
    writer = FhirStore.open(path)
    writer.applier().apply(Offsets().records([changed(patient("d", "Z"), 1)]))
    reader = FhirStore.open(path, readonly=True)
    assert reader.read("Patient", "d") is not None
    with pytest.raises(StoreError):
        reader.applier()
    with writer_lock(path), pytest.raises(StoreError), writer_lock(path):
        pass


def test_compare_finds_differences(tmp_path: Path) -> None:
    a = FhirStore.open(tmp_path / "a.sqlite")
    b = FhirStore.open(tmp_path / "b.sqlite")
    a.applier().apply(Offsets().records([changed(patient("e", "Same"), 1)]))
    b.applier().apply(Offsets().records([changed(patient("e", "Same"), 1)]))
    # Different event ids: the same resource from two separate folds is not "the same log".
    result = compare(a._conn(), b._conn())
    assert not result.equal and "event_id" in result.differences[0]
    c = FhirStore.open(tmp_path / "c.sqlite")
    c.applier().apply(Offsets().records([changed(patient("f", "Other"), 1)]))
    assert any("only in" in d for d in compare(a._conn(), c._conn()).differences)
    assert compare(a._conn(), a._conn()).equal


def test_index_rows_are_written_with_few_statements(tmp_path: Path) -> None:
    """Rows go in as multi-row INSERTs, not one statement per row; the store is the same."""
    store = FhirStore.open(tmp_path / "s.sqlite")
    conn = store._conn()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    log = Offsets()
    store.applier().apply(log.records([changed(patient(f"p{i}", f"F{i}"), 1) for i in range(300)]))
    conn.set_trace_callback(None)
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) < 30, f"{len(inserts)} INSERT statements for 300 resources"
    assert len(store.search("Patient", [("family:exact", "F7")]).matches) == 1
    assert store.search("Patient", [("_count", "1000")]).total == 300
    stored = conn.execute("SELECT pid, norm, exact FROM ix_string WHERE rid = 8").fetchall()
    assert sorted(stored) == sorted(index_rows("Patient", patient("p7", "F7"))["ix_string"])


def test_the_cyclic_collector_does_not_run_during_a_batch(tmp_path: Path) -> None:
    """A batch allocates many short-lived dicts and tuples, freed by reference counting:
    collector passes over them cost a fifth of the apply. It is paused for the batch only."""
    import gc

    store = FhirStore.open(tmp_path / "s.sqlite")
    log = Offsets()
    records = log.records([changed(patient(f"p{i}", f"F{i}"), 1) for i in range(3000)])
    applier = store.applier()
    passes: list[str] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(phase)

    gc.callbacks.append(seen)
    try:
        assert gc.isenabled()
        applier.apply(records)
    finally:
        gc.callbacks.remove(seen)
    assert len(passes) <= 1  # the pass owed, once the batch is done (57 passes unpaused)
    assert gc.isenabled()
    assert store.search("Patient", [("_count", "1"), ("_total", "accurate")]).total == 3000
