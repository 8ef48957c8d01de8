"""Deterministic resource ids (processors/ids.py)."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.ids import CARELOG_NAMESPACE, resource_id, uuid5_text


def test_id_is_uuid5_of_type_and_parts_in_the_carelog_namespace() -> None:
    expected = uuid.uuid5(CARELOG_NAMESPACE, "Patient|NWH|MRN7731")
    assert resource_id("Patient", "NWH", "MRN7731") == str(expected)
    assert uuid.UUID(resource_id("Patient", "NWH", "MRN7731")).version == 5


def test_namespace_is_fixed_forever() -> None:
    # Changing it would change every id already on the log.
    assert str(CARELOG_NAMESPACE) == "fe8b97e0-0491-5218-945f-cd1ec0551b25"
    assert resource_id("Patient", "NWH", "MRN7731") == "caf598fe-4339-5ab3-8d69-584d58b40e27"


def test_one_patient_from_hl7_dicom_and_device_readings_has_one_id() -> None:
    from processors.hl7v2.ids import patient as hl7_patient
    from processors.ids import local_system, patient_id

    system = local_system("NWH")  # HL7 CX-4 "NWH", DICOM IssuerOfPatientID "NWH"
    assert hl7_patient(system, "MRN7731") == patient_id(system, "MRN7731")
    assert patient_id(system, " MRN7731 ") == patient_id(system, "MRN7731")


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


def test_a_named_authority_has_one_system_whoever_names_it() -> None:
    """HL7 CX-4.1, a device batch's assigner and DICOM IssuerOfPatientID all use this."""
    from processors.ids import authority_system

    assert authority_system("NWH") == "urn:carelog:sid:NWH"
    assert authority_system("North Wind/East") == "urn:carelog:sid:North%20Wind%2FEast"
    assert authority_system("SSA") == "http://hl7.org/fhir/sid/us-ssn"
    assert authority_system("NWH", {"NWH": "urn:oid:1.2.3"}) == "urn:oid:1.2.3"
    assert authority_system("SSA", {"SSA": "urn:oid:1.2.4"}) == "urn:oid:1.2.4"  # configured wins
    assert authority_system("NWH", base="urn:other:") == "urn:other:NWH"


@given(st.text())
def test_uuid5_text_is_the_standard_uuid5(name: str) -> None:
    for namespace in (CARELOG_NAMESPACE, uuid.NAMESPACE_URL):
        try:
            expected = str(uuid.uuid5(namespace, name))
        except UnicodeEncodeError:  # a lone surrogate: neither can encode it
            with pytest.raises(UnicodeEncodeError):
                uuid5_text(namespace, name)
            continue
        assert uuid5_text(namespace, name) == expected
