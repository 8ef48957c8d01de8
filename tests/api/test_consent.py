"""Consent honoured by FHIR reads (api/security/consent.py), judged against a real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.errors import Forbidden
from api.security.consent import consented, refuse_denied
from projections.fhir_store import FhirStore
from schemas.consent import Asker
from tests.projections.fhir_store_support import store_with


def _consent(
    cid: str, patient: str, provision: dict[str, object], status: str = "active"
) -> dict[str, object]:
    return {"resourceType": "Consent", "id": cid, "status": status,
            "scope": {"coding": [{"code": "patient-privacy"}]}, "category": [{"text": "x"}],
            "patient": {"reference": f"Patient/{patient}"}, "provision": provision}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> FhirStore:
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "t"}}
    return store_with(tmp_path / "s.sqlite", [
        {"resourceType": "Patient", "id": "p1"}, {"resourceType": "Patient", "id": "p2"},
        {"resourceType": "Patient", "id": "p3"},
        {**obs, "id": "o1", "subject": {"reference": "Patient/p1"}},
        {**obs, "id": "o2", "subject": {"reference": "Patient/p2"}},
        {**obs, "id": "o3", "subject": {"reference": "Patient/p3"}},
        _consent("c1", "p1", {"type": "deny", "actor": [{"reference": {"reference": "Device/app-1"}}]}),
        _consent("c2", "p2", {"type": "deny", "purpose": [{"code": "HRESCH"}]}),
        _consent("c3", "p3", {"type": "deny"}, status="inactive"),
    ])  # fmt: skip


def _kept(store: FhirStore, asker: Asker) -> list[str]:
    items = [r for t in ("Patient", "Observation", "Consent") for r in store.search(t, []).matches]
    return sorted(r.key for r in consented(store, asker, items)[0])


def test_a_deny_for_an_actor_hides_the_patient_from_that_actor_only(store: FhirStore) -> None:
    hidden = {"Patient/p1", "Observation/o1"}
    everything = _kept(store, Asker("app-2", None))
    assert hidden <= set(everything) and "Consent/c1" in everything
    assert sorted(set(everything) - hidden) == _kept(store, Asker("app-1", None))
    with pytest.raises(Forbidden, match="Consent/c1"):
        refuse_denied(
            store, Asker("app-1", None), "Observation", "o1", store.read("Observation", "o1")
        )
    refuse_denied(store, Asker("app-2", None), "Observation", "o1", store.read("Observation", "o1"))
    refuse_denied(store, Asker("app-1", None), "Observation", "o9", None)  # none: nothing to deny


def test_a_deny_for_a_purpose_applies_to_that_purpose_only(store: FhirStore) -> None:
    assert "Observation/o2" in _kept(store, Asker("app-2", "TREAT"))
    assert "Observation/o2" not in _kept(store, Asker("app-2", "HRESCH"))


def test_an_inactive_consent_denies_nothing(store: FhirStore) -> None:
    assert "Observation/o3" in _kept(store, Asker("app-1", "HRESCH"))
