"""Patient compartment membership of one version, judged from that version's own JSON.

The search indexes hold the current version only, so they cannot say whether an older
version was in a compartment (a result misfiled under one patient and moved to another).
This module answers it with the same R4 Patient CompartmentDefinition and the same
extractors the indexes are built with: a version is in Patient/x's compartment when one of
its type's compartment parameters refers to Patient/x (or, for a Patient, when it is x).
A deletion has no JSON: it belongs where the version it deleted was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from projections.fhir_store.definitions import load_registry
from projections.fhir_store.errors import StoreError
from projections.fhir_store.extract import extractors
from projections.fhir_store.models import StoredResource


def patients_of(resource_type: str, resource: dict[str, Any]) -> frozenset[str]:
    """Ids of the patients whose compartment holds `resource`."""
    linking = load_registry().compartment.get(resource_type, ())
    found: set[str] = set()
    if resource_type == "Patient" and type(resource.get("id")) is str:
        found.add(resource["id"])
    for ex in extractors(resource_type):
        if ex.param.name not in linking or ex.param.kind != "reference":
            continue
        values = ex.extract(resource)
        if values:
            found.update(tid for ttype, tid, _ in ex.rows(values) if ttype == "Patient")
    return frozenset(found)


def in_compartment(
    versions: Sequence[StoredResource], compartment: tuple[str, str]
) -> list[StoredResource]:
    """Those of one resource's `versions` (oldest first) that were in `compartment`."""
    kind, owner = compartment
    if kind != "Patient":
        raise StoreError(f"only the Patient compartment is supported, not {kind}")
    kept = []
    inside = False  # a deletion with nothing before it belongs to no one
    for version in versions:
        if not version.deleted:
            resource = orjson.loads(version.json)
            inside = owner in patients_of(version.resource_type, resource)
        if inside:
            kept.append(version)
    return kept
