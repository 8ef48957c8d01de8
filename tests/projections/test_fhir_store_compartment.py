"""Compartment membership per version: vread and history within a patient's compartment judge
every version by its own JSON (no broker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from projections.fhir_store import FhirStore, StoreError
from projections.fhir_store.compartment import patients_of
from tests.projections.fhir_store_support import Offsets, changed

A, B = ("Patient", "pa"), ("Patient", "pb")


def obs(oid: str, patient: str, value: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": oid, "status": "final",
            "code": {"text": "Hb"}, "subject": {"reference": f"Patient/{patient}"},
            "valueQuantity": {"value": value, "unit": "g/dL"}}  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirStore]:
    path: Path = tmp_path_factory.mktemp("compartment") / "store.sqlite"
    pb_linked = {"resourceType": "Patient", "id": "pb", "link": [
        {"other": {"reference": "Patient/pa"}, "type": "replaced-by"}]}  # fmt: skip
    events = [
        changed({"resourceType": "Patient", "id": "pa"}, 1),
        changed({"resourceType": "Patient", "id": "pb"}, 1),
        changed(pb_linked, 2),  # from now on pb is in pa's compartment too (Patient.link)
        # moved: misfiled under pb, corrected to pa, then updated under pa
        changed(obs("moved", "pb", 1), 1),
        changed(obs("moved", "pa", 1), 2),
        changed(obs("moved", "pa", 2), 3),
        # deleted under pb, created again under pa: the deletion belongs where v1 was
        changed(obs("again", "pb", 1), 1),
        changed(obs("again", "pb", 1), 2, delete=True),
        changed(obs("again", "pa", 1), 3),
        # deleted and created again, always under pa
        changed(obs("mine", "pa", 1), 1),
        changed(obs("mine", "pa", 1), 2, delete=True),
        changed(obs("mine", "pa", 3), 3),
    ]
    with FhirStore.open(path) as store:
        store.applier().apply(Offsets().records(events))
        yield store


def versions(store: FhirStore, rid: str, compartment: tuple[str, str] | None, **kw: Any) -> Any:
    found, total = store.history("Observation", rid, compartment=compartment, **kw)
    return [v.version for v in found], total


def test_patients_of_follows_the_compartment_definition() -> None:
    assert patients_of("Observation", obs("o", "pa", 1)) == {"pa"}
    performer = {**obs("o", "pa", 1), "performer": [{"reference": "Patient/pc"}]}
    assert patients_of("Observation", performer) == {"pa", "pc"}
    assert patients_of("Patient", {"resourceType": "Patient", "id": "pa"}) == {"pa"}
    absolute = {**obs("o", "x", 1), "subject": {"reference": "http://h.example/fhir/Patient/pd"}}
    assert patients_of("Observation", absolute) == {"pd"}
    assert patients_of("Practitioner", {"resourceType": "Practitioner", "id": "d"}) == set()


def test_vread_within_a_compartment_judges_that_version(store: FhirStore) -> None:
    assert store.vread("Observation", "moved", 1) is not None  # no compartment: every version
    assert store.vread("Observation", "moved", 1, A) is None  # v1 was pb's
    assert store.vread("Observation", "moved", 1, B) is not None
    assert store.vread("Observation", "moved", 2, A) is not None
    assert store.vread("Observation", "moved", 2, B) is None
    assert store.vread("Patient", "pb", 1, A) is None  # not linked yet
    assert store.vread("Patient", "pb", 2, A) is not None
    deletion = store.vread("Observation", "again", 2, B)
    assert deletion is not None and deletion.deleted
    assert store.vread("Observation", "again", 2, A) is None


def test_history_within_a_compartment_lists_and_counts_only_its_versions(store: FhirStore) -> None:
    assert versions(store, "moved", None) == ([3, 2, 1], 3)
    assert versions(store, "moved", A) == ([3, 2], 2)
    assert versions(store, "moved", B) == ([1], 1)
    assert versions(store, "moved", A, count=1) == ([3], 2)
    assert versions(store, "moved", A, count=1, offset=1) == ([2], 2)
    assert versions(store, "moved", A, count=5, offset=2) == ([], 2)
    assert versions(store, "again", A) == ([3], 1)
    assert versions(store, "again", B) == ([2, 1], 2)
    assert versions(store, "mine", A) == ([3, 2, 1], 3)
    since = store.vread("Observation", "moved", 3)
    assert since is not None
    assert versions(store, "moved", A, since=since.last_updated) == ([3], 1)


def test_history_within_a_compartment_is_for_one_resource(store: FhirStore) -> None:
    with pytest.raises(StoreError):
        store.history("Observation", None, compartment=A)


def test_chains_within_a_compartment_stay_in_it(tmp_path: Path) -> None:
    """A chain must not probe another patient's data through a reference it can see."""
    with_performer = {**obs("seen", "pa", 1), "performer": [{"reference": "Patient/pc"}]}
    events = [
        changed({"resourceType": "Patient", "id": "pa", "name": [{"family": "Able"}]}),
        changed({"resourceType": "Patient", "id": "pc", "name": [{"family": "Carter"}]}),
        changed(with_performer),
    ]
    with FhirStore.open(tmp_path / "store.sqlite") as store:
        store.applier().apply(Offsets().records(events))

        def found(params: list[tuple[str, str]], compartment: tuple[str, str] | None) -> list[str]:
            return [m.id for m in store.search("Observation", params, compartment).matches]

        probe = [("performer:Patient.name", "Carter")]
        assert found(probe, None) == ["seen"]
        assert found(probe, A) == []  # pc is not in pa's compartment
        assert found([("subject:Patient.name", "Able")], A) == ["seen"]
        assert found([("subject.name", "Able")], A) == ["seen"]
