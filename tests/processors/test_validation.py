"""Validation helper and the terminology checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.validation import resource_issues as validate
from schemas.terminology import icd10, loinc, snomed, ucum

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def test_invalid_observation_names_status_and_decimal() -> None:
    resource = json.loads((CORPUS / "fhir" / "observation_invalid_status.json").read_text())
    locations = {i.location for i in validate(resource) if i.severity == "error"}
    assert {"Observation.status", "Observation.valueQuantity.value"} <= locations


def test_unknown_element_and_missing_required() -> None:
    issues = validate(
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "foo": 1}
    )
    assert {(i.location, i.code) for i in issues} == {("Observation.foo", "structure")}
    # fhir.resources checks required primitives (status) in a model validator, which runs
    # only once the fields themselves are valid; required complex elements fail at once.
    issues = validate({"resourceType": "Observation", "code": {"text": "x"}})
    assert {(i.location, i.code) for i in issues} == {("Observation.status", "required")}


def test_terminology_locations() -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "718-8"}]},
        "valueQuantity": {"value": 1, "system": "http://unitsofmeasure.org", "code": "mg/"},
    }
    locations = {i.location for i in validate(obs)}
    assert locations == {"Observation.code.coding[0].code", "Observation.valueQuantity.code"}


@pytest.mark.parametrize("code", ["718-7", "6690-2", "58410-2", "2345-7"])
def test_loinc_valid(code: str) -> None:
    assert loinc.problem(code) is None


@given(st.integers(min_value=1, max_value=9_999_999))
def test_loinc_exactly_one_check_digit_fits(number: int) -> None:
    good = [d for d in range(10) if loinc.problem(f"{number}-{d}") is None]
    assert good == [loinc.check_digit(str(number))]


@pytest.mark.parametrize("code", ["3092008", "119364003", "22298006", "38341003"])
def test_snomed_valid(code: str) -> None:
    assert snomed.problem(code) is None


@given(st.integers(min_value=100, max_value=10**14))
def test_snomed_verhoeff_catches_single_digit_errors(stem: int) -> None:
    body = f"{stem}00"  # short-format concept partition
    check = next(d for d in range(10) if snomed.verhoeff_valid(f"{body}{d}"))
    code = f"{body}{check}"
    wrong = code[:-1] + str((check + 1) % 10)
    assert not snomed.verhoeff_valid(wrong)


@pytest.mark.parametrize("code", ["L03.115", "I10", "E11.9", "U07.1", "S72.001A"])
def test_icd10_shape(code: str) -> None:
    assert icd10.problem(code) is None


@pytest.mark.parametrize(
    "code",
    [
        "10*3/uL",
        "g/dL",
        "mm[Hg]",
        "{cells}/uL",
        "kg/m2",
        "/min",
        "%",
        "[pH]",
        "mL",
        "10*9/L",
        "umol/L",
        "[iU]/mL",
        "kg.m-2",
        "g/(24.h)",
        "mmol/mol",
        "fL",
        "s-1",
        "[degF]",
        "1/min",
        "{beats}/min",
        "mL/min/{1.73_m2}",
        "[fur_us]",
        "mosm/kg",
        "cm[H2O]",
    ],
)
def test_ucum_valid(code: str) -> None:
    assert ucum.problem(code) is None


@pytest.mark.parametrize(
    "code", ["", "mg/", "xyz", "10*", "(g/L", "{open", "m g", "kg.", "[pH", "furlongs", "kbeats"]
)
def test_ucum_invalid(code: str) -> None:
    assert ucum.problem(code) is not None


def quantity_observation(value: float, unit: str) -> dict[str, object]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "x"},
        "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org", "code": unit},
    }


def test_an_unknown_ucum_unit_is_an_error_not_a_warning() -> None:
    issues = validate(quantity_observation(1, "furlongs"))
    assert [(i.location, i.severity) for i in issues] == [
        ("Observation.valueQuantity.code", "error")
    ]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 10**20])
def test_numbers_must_be_finite_and_storable(value: float) -> None:
    issues = validate(quantity_observation(value, "mg"))
    assert "Observation.valueQuantity.value" in {i.location for i in issues}


def test_control_characters_in_any_string_are_refused() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Do\x00e", "given": ["A\tB"]}]}
    issues = validate(patient)
    assert [(i.location, i.code) for i in issues] == [("Patient.name[0].family", "value")]
    assert "U+0000" in issues[0].diagnostics


def test_data_type_bindings_apply_in_every_resource() -> None:
    practitioner = {"resourceType": "Practitioner", "telecom": [{"system": "pigeon"}]}
    assert [i.location for i in validate(practitioner)] == ["Practitioner.telecom[0].system"]


@pytest.mark.parametrize("text", ["12.5", "[1]", "true"])
def test_json_text_where_a_primitive_extension_belongs_is_an_issue_not_a_crash(text: str) -> None:
    # fhir.resources parses a string given for a complex element as JSON; a number, list or
    # boolean there made its FHIRPrimitiveExtension validator raise AttributeError, which the
    # translate stage reported as an internal error instead of naming the element.
    resource = {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                "_status": text}  # fmt: skip
    issues = validate(resource)
    assert [(i.location, i.code) for i in issues] == [("Observation._status", "structure")]
    assert "wrong kind" in issues[0].diagnostics
