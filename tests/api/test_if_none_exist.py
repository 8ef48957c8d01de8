"""The gateway and the processors agree on conditional creates: the id a create that
matched nothing gets, and which criteria are refused (api/ repeats processors/ rules so
as not to import them)."""

from __future__ import annotations

import orjson
import pytest

from api.errors import BadRequest
from api.fhir import if_none_exist
from api.fhir.write_requests import single_write
from api.fhir.write_targets import criteria_id, target_of
from processors import fhir_request
from processors.fhir_input import translate_fhir
from processors.translation import TranslationError

CRITERIA = [
    "identifier=urn:oid:1.2.3|42",
    "identifier= urn:oid:1.2.3 | 42 ",
    "identifier=42",
    "identifier=|42",
    "family=Smith&birthdate=1970-01-01",
    "birthdate=1970-01-01&family=Smith",
    "identifier=a|1&identifier=b|2",
    "name:exact=Ann%20Lee",
    "subject:Patient.identifier=urn:x|9",
]
REFUSED = ["", "&", "identifier=", "=42", "_count=1", "family=x&_sort=family", "_include=*"]


@pytest.mark.parametrize("criteria", CRITERIA)
def test_the_gateway_predicts_the_id_the_processors_assign(criteria: str) -> None:
    params = if_none_exist.parse_criteria(criteria, "If-None-Exist")
    assert criteria_id("Patient", params) == fhir_request.conditional_id(
        "Patient", criteria, "http.if-none-exist"
    )


@pytest.mark.parametrize("criteria", REFUSED)
def test_both_refuse_the_same_criteria(criteria: str) -> None:
    with pytest.raises(BadRequest) as at_the_door:
        if_none_exist.parse_criteria(criteria, "If-None-Exist")
    assert at_the_door.value.issues[0].location == "If-None-Exist"
    with pytest.raises(TranslationError):
        fhir_request.conditional_id("Patient", criteria, "http.if-none-exist")


def test_both_share_the_result_parameters_and_the_ids_header() -> None:
    assert if_none_exist.RESULT_PARAMS == fhir_request.RESULT_PARAMS
    assert if_none_exist.IDS_HEADER == fhir_request.IDS_HEADER


def test_identical_criteria_in_any_order_converge_and_others_do_not() -> None:
    ids = {c: criteria_id("Patient", if_none_exist.parse_criteria(c, "x")) for c in CRITERIA}
    assert ids[CRITERIA[0]] == ids[CRITERIA[1]]  # trimmed, as processors/ids.py trims
    assert ids[CRITERIA[4]] == ids[CRITERIA[5]]  # parameter order does not matter
    assert len({ids[c] for c in CRITERIA}) == len(CRITERIA) - 2


@pytest.mark.parametrize("resolved", [None, "", "found-1"])
@pytest.mark.parametrize("criteria", CRITERIA[:5])
def test_the_gateway_waits_on_the_resource_the_processors_write(
    criteria: str, resolved: str | None
) -> None:
    """Whatever the gateway resolved (nothing, a taken criteria id, a match in a Bundle),
    the target it waits on is the resource the processors write."""
    event_id = "9e0c55c4-8f3d-4c55-9b0e-0f6b2f3f1a01"
    headers = {"http.method": "POST", "http.path": "/fhir/Patient",
               "http.if-none-exist": criteria}  # fmt: skip
    if resolved is not None:
        headers[fhir_request.IDS_HEADER] = orjson.dumps({"0": resolved}).decode()
    [written] = translate_fhir(b'{"resourceType": "Patient"}', headers, event_id).resources
    if_none_exist.parse_criteria(criteria, "If-None-Exist")  # the gateway checked them
    target = target_of(single_write("POST", "Patient", None, criteria), event_id, resolved)
    assert target is not None
    assert (target.resource_id, target.if_none_exist) == (written.resource["id"], True)
