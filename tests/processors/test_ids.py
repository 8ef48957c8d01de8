"""Deterministic resource ids (processors/ids.py)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from processors.ids import CARELOG_NAMESPACE, resource_id


def test_id_is_uuid5_of_type_and_parts_in_the_carelog_namespace() -> None:
    expected = uuid.uuid5(CARELOG_NAMESPACE, "Patient|NWH|MRN7731")
    assert resource_id("Patient", "NWH", "MRN7731") == str(expected)
    assert uuid.UUID(resource_id("Patient", "NWH", "MRN7731")).version == 5


def test_namespace_is_fixed_forever() -> None:
    # Changing it would change every id already on the log.
    assert str(CARELOG_NAMESPACE) == "6f0c2a4e-8d1b-5c3a-9e7f-0a1b2c3d4e5f"
    assert resource_id("Patient", "NWH", "MRN7731") == "b7ea1f84-5530-5d58-ab28-851db90bc73c"


def test_type_and_each_part_change_the_id() -> None:
    base = resource_id("Patient", "NWH", "MRN7731")
    assert resource_id("RelatedPerson", "NWH", "MRN7731") != base
    assert resource_id("Patient", "NWH2", "MRN7731") != base
    assert resource_id("Patient", "NWH", "MRN7732") != base
    assert resource_id("Patient", "MRN7731", "NWH") != base


@given(st.text(min_size=1), st.lists(st.text()))
def test_same_input_same_id_and_a_valid_fhir_id(resource_type: str, parts: list[str]) -> None:
    first = resource_id(resource_type, *parts)
    assert first == resource_id(resource_type, *parts)
    assert len(first) == 36  # a FHIR id is at most 64 of [A-Za-z0-9-.]
    assert all(c in "0123456789abcdef-" for c in first)
