"""FHIR REST writes to resources (processors/fhir_input.py), expected output from FHIR R4."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.fhir_input import MAPPING_VERSION, translate_fhir
from processors.ids import resource_id
from processors.translation import TranslatedResource, Translation, TranslationError
from processors.validation import validated
from tests.conftest import CORPUS
from tests.processors.json_values import json_values
from tests.processors.r4b import assert_valid_r4b

EVENT = "0b7d3f52-3c3e-4a57-9a43-2f2f0c6f8f10"
TRANSACTION = (CORPUS / "fhir" / "transaction_patient_with_condition.json").read_bytes()
INVALID_OBSERVATION = (CORPUS / "fhir" / "observation_invalid_status.json").read_bytes()
PATIENT = {"resourceType": "Patient", "gender": "female", "birthDate": "1980-02-29"}


def request(method: str, path: str, **headers: str) -> dict[str, str]:
    return {
        "http.method": method,
        "http.path": path,
        **{f"http.{k.replace('_', '-')}": v for k, v in headers.items()},
    }


def body(resource: dict[str, Any]) -> bytes:
    return orjson.dumps(resource)


def translate_valid(payload: bytes, headers: dict[str, str], event_id: str) -> Translation:
    """As the translate stage does: translate, then validate the resources once."""
    return validated(translate_fhir(payload, headers, event_id))


def locations(exc: pytest.ExceptionInfo[TranslationError]) -> set[str | None]:
    return {issue.location for issue in exc.value.issues}


def assert_all_valid(translation: Translation) -> None:
    for item in translation.resources:
        if item.operation == "upsert":
            assert_valid_r4b(item.resource)


# --- the corpus -------------------------------------------------------------------------


def test_transaction_resolves_urn_uuid_and_gives_conditional_create_a_deterministic_id() -> None:
    translation = translate_fhir(TRANSACTION, request("POST", "/fhir"), EVENT)

    patient_id = resource_id("Patient", "http://lakeview.example.org/mrn", "L904411")
    condition_id = resource_id("Condition", EVENT, "1")
    assert translation == Translation(
        [
            TranslatedResource(
                {
                    "resourceType": "Patient",
                    "id": patient_id,
                    "identifier": [
                        {"system": "http://lakeview.example.org/mrn", "value": "L904411"}
                    ],
                    "name": [{"family": "Nakamura", "given": ["Hiro"]}],
                    "gender": "male",
                    "birthDate": "1991-07-22",
                },
                if_none_exist=True,
            ),
            TranslatedResource(
                {
                    "resourceType": "Condition",
                    "id": condition_id,
                    "clinicalStatus": {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                "code": "active",
                            }
                        ]
                    },
                    "code": {
                        "coding": [
                            {
                                "system": "http://snomed.info/sct",
                                "code": "44054006",
                                "display": "Diabetes mellitus type 2",
                            }
                        ]
                    },
                    "subject": {"reference": f"Patient/{patient_id}"},
                    "onsetDateTime": "2019-03-01",
                }
            ),
        ],
        business_time=None,
        mapping_version=MAPPING_VERSION,
    )
    assert_all_valid(translation)


def test_conditional_create_converges_when_sent_again_as_another_event() -> None:
    first = translate_fhir(TRANSACTION, request("POST", "/fhir"), EVENT)
    again = translate_fhir(TRANSACTION, request("POST", "/fhir"), "another-event")
    assert first.resources[0] == again.resources[0]  # the same Patient, same id
    assert first.resources[1].resource["id"] != again.resources[1].resource["id"]  # a new Condition


def test_invalid_observation_is_rejected_naming_status_and_decimal() -> None:
    with pytest.raises(TranslationError) as exc:
        translate_valid(INVALID_OBSERVATION, request("POST", "/fhir/Observation"), EVENT)
    assert {"Observation.status", "Observation.valueQuantity.value"} <= locations(exc)
    status = next(i for i in exc.value.issues if i.location == "Observation.status")
    assert status.code == "code-invalid" and "'finished'" in status.diagnostics


def test_invalid_observation_inside_a_bundle_is_located_in_its_entry() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": orjson.loads(INVALID_OBSERVATION),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    with pytest.raises(TranslationError) as exc:
        translate_valid(body(bundle), request("POST", "/fhir"), EVENT)
    assert locations(exc) == {
        "Bundle.entry[0].resource.status",
        "Bundle.entry[0].resource.valueQuantity.value",
    }


# --- create, update, delete ------------------------------------------------------------


def test_create_ignores_the_client_id_and_derives_one_from_the_event() -> None:
    sent = {
        **PATIENT,
        "id": "client-chosen",
        "meta": {
            "versionId": "7",
            "lastUpdated": "2020-01-01T00:00:00Z",
            "security": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}
            ],
        },
    }
    translation = translate_fhir(body(sent), request("POST", "/fhir/Patient"), EVENT)
    [item] = translation.resources
    assert item.resource["id"] == resource_id("Patient", EVENT)
    assert item.operation == "upsert" and item.if_match is None
    # server-owned meta goes, the client's security label stays
    assert item.resource["meta"] == {"security": sent["meta"]["security"]}
    assert_all_valid(translation)


def test_create_with_if_none_exist_identifier_takes_the_identifier_id() -> None:
    sent = {**PATIENT, "identifier": [{"system": "urn:oid:1.2.3", "value": "42"}]}
    headers = request("POST", "/fhir/Patient", if_none_exist="identifier=urn:oid:1.2.3%7C42")
    [item] = translate_fhir(body(sent), headers, EVENT).resources
    assert item.resource["id"] == resource_id("Patient", "urn:oid:1.2.3", "42")


def test_a_conditional_create_is_create_only() -> None:
    headers = request("POST", "/fhir/Patient", if_none_exist="identifier=urn:oid:1.2.3%7C42")
    [item] = translate_fhir(body(PATIENT), headers, EVENT).resources
    assert item.if_none_exist is True
    [plain] = translate_fhir(body(PATIENT), request("POST", "/fhir/Patient"), EVENT).resources
    assert plain.if_none_exist is False


@pytest.mark.parametrize(
    ("criteria", "same_as"),
    [
        ("family=Smith", "family=Smith"),
        ("identifier=42", "identifier=42"),
        ("identifier=|42", "identifier=%7C42"),
        ("identifier=a|1&birthdate=2000-01-01", "birthdate=2000-01-01&identifier=a%7C1"),
    ],
)
def test_other_criteria_give_the_id_of_their_canonical_form(criteria: str, same_as: str) -> None:
    """Concurrent identical conditional creates converge on one id, whatever the order of
    the parameters; the gateway derives the same id (api/fhir/write_targets.py)."""
    [item] = translate_fhir(
        body(PATIENT), request("POST", "/fhir/Patient", if_none_exist=criteria), EVENT
    ).resources
    [again] = translate_fhir(
        body(PATIENT), request("POST", "/fhir/Patient", if_none_exist=same_as), "other-event"
    ).resources
    assert item.resource["id"] == again.resource["id"] != resource_id("Patient", EVENT)
    assert item.if_none_exist


@pytest.mark.parametrize(
    "criteria", ["", "identifier=", "=42", "_count=1", "identifier=a|1&_sort=name", "&&"]
)
def test_criteria_that_select_nothing_are_refused(criteria: str) -> None:
    headers = request("POST", "/fhir/Patient", if_none_exist=criteria)
    with pytest.raises(TranslationError) as exc:
        translate_fhir(body(PATIENT), headers, EVENT)
    assert locations(exc) == {"http.if-none-exist"}
    assert exc.value.issues[0].code == "not-supported"


def test_criteria_whose_id_the_gateway_found_taken_create_with_a_fresh_id() -> None:
    """The criteria's own id holds a resource that does not match them (edited since):
    the gateway says so ("" in carelog.if-none-exist.ids) and the create takes the id a
    plain create gets, so the client's resource is created instead of silently dropped."""
    headers = {
        **request("POST", "/fhir/Patient", if_none_exist="identifier=a|1"),
        "carelog.if-none-exist.ids": '{"0": ""}',
    }
    [item] = translate_fhir(body(PATIENT), headers, EVENT).resources
    assert item.resource["id"] == resource_id("Patient", EVENT) and item.if_none_exist


def test_if_none_match_star_expects_no_current_version() -> None:
    headers = request("PUT", "/fhir/Patient/p-1", if_none_match="*")
    [item] = translate_fhir(body(PATIENT), headers, EVENT).resources
    assert item.if_match == 0


@pytest.mark.parametrize(
    ("if_none_match", "if_match"), [('W/"1"', None), ("*", 'W/"1"'), ("", None)]
)
def test_if_none_match_other_than_star_alone_is_refused(
    if_none_match: str, if_match: str | None
) -> None:
    extra = {"if_match": if_match} if if_match else {}
    headers = request("PUT", "/fhir/Patient/p-1", if_none_match=if_none_match, **extra)
    with pytest.raises(TranslationError) as exc:
        translate_fhir(body(PATIENT), headers, EVENT)
    assert locations(exc) == {"http.if-none-match"}


def test_update_keeps_the_url_id_and_carries_if_match() -> None:
    headers = request("PUT", "/fhir/Patient/p-1", if_match='W/"3"')
    translation = translate_fhir(body({**PATIENT, "id": "p-1"}), headers, EVENT)
    assert translation.resources == [TranslatedResource({**PATIENT, "id": "p-1"}, "upsert", 3)]
    assert list(translation.resources[0].resource)[:2] == ["resourceType", "id"]
    # a body without id is fine too: the URL names it
    no_id = translate_fhir(body(PATIENT), request("PUT", "/fhir/Patient/p-1"), EVENT)
    assert no_id.resources[0].resource["id"] == "p-1"


def test_update_whose_body_id_differs_from_the_url_is_rejected() -> None:
    with pytest.raises(TranslationError) as exc:
        translate_fhir(body({**PATIENT, "id": "p-2"}), request("PUT", "/fhir/Patient/p-1"), EVENT)
    assert locations(exc) == {"Patient.id"}


@pytest.mark.parametrize("etag", ['"3"x', "W/3", 'W/"-1"', "three"])
def test_a_malformed_if_match_is_rejected(etag: str) -> None:
    with pytest.raises(TranslationError) as exc:
        translate_fhir(body(PATIENT), request("PUT", "/fhir/Patient/p-1", if_match=etag), EVENT)
    assert locations(exc) == {"http.if-match"}


def test_delete() -> None:
    headers = request("DELETE", "/fhir/Observation/o-9", if_match='W/"12"')
    translation = translate_fhir(b"", headers, EVENT)
    assert translation.resources == [
        TranslatedResource({"resourceType": "Observation", "id": "o-9"}, "delete", 12)
    ]


@pytest.mark.parametrize(
    ("method", "path", "location"),
    [
        ("PATCH", "/fhir/Patient/p-1", "http.path"),
        ("GET", "/fhir/Patient", "http.path"),
        ("POST", "/other/Patient", "http.path"),
        ("POST", "/fhir/patient", "http.path"),
        ("PUT", "/fhir/Patient/bad id!", "http.path"),
        ("POST", "/fhir/Patient/p-1/_history", "http.path"),
        ("POST", "/fhir/Quantity", "http.path"),  # a data type, not a resource
        ("POST", "/fhir/DomainResource", "http.path"),  # abstract
    ],
)
def test_requests_carelog_does_not_take(method: str, path: str, location: str) -> None:
    with pytest.raises(TranslationError) as exc:
        translate_fhir(body(PATIENT), request(method, path), EVENT)
    assert locations(exc) == {location}


def test_conditional_update_by_query_is_not_supported() -> None:
    headers = {**request("PUT", "/fhir/Patient"), "http.query": "identifier=a|1"}
    with pytest.raises(TranslationError) as exc:
        translate_fhir(body(PATIENT), headers, EVENT)
    assert locations(exc) == {"http.query"}


def test_body_of_another_type_than_the_url_is_rejected() -> None:
    with pytest.raises(TranslationError) as exc:
        translate_fhir(body(PATIENT), request("POST", "/fhir/Observation"), EVENT)
    assert locations(exc) == {"Observation.resourceType"}


@pytest.mark.parametrize(
    ("resource", "location"),
    [
        ({**PATIENT, "gender": "F"}, "Patient.gender"),
        ({**PATIENT, "birthDate": "22/07/1991"}, "Patient.birthDate"),
        ({**PATIENT, "name": [{"use": "nick"}]}, "Patient.name[0].use"),
        ({**PATIENT, "favouriteColour": "blue"}, "Patient.favouriteColour"),
        (
            {"resourceType": "Encounter", "status": "done", "class": {"code": "IMP"}},
            "Encounter.status",
        ),
        (
            {
                "resourceType": "Condition",
                "subject": {"reference": "Patient/1"},
                "clinicalStatus": {"text": "active"},
            },
            "Condition.clinicalStatus.coding",
        ),
        ({"resourceType": "Observation", "code": {"text": "x"}}, "Observation.status"),
    ],
)
def test_invalid_content_names_the_fhirpath(resource: dict[str, Any], location: str) -> None:
    path = f"/fhir/{resource['resourceType']}"
    with pytest.raises(TranslationError) as exc:
        translate_valid(body(resource), request("POST", path), EVENT)
    assert locations(exc) == {location}


# --- Bundles -----------------------------------------------------------------------------


def entry(
    method: str,
    url: str,
    resource: dict[str, Any] | None = None,
    full_url: str | None = None,
    **request_extra: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {"request": {"method": method, "url": url, **request_extra}}
    if resource is not None:
        out["resource"] = resource
    if full_url is not None:
        out["fullUrl"] = full_url
    return out


def bundle(kind: str, *entries: dict[str, Any]) -> bytes:
    return body({"resourceType": "Bundle", "type": kind, "entry": list(entries)})


OBS = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"text": "pulse"},
    "subject": {"reference": "urn:uuid:5a5c6b0e-0000-4000-8000-000000000001"},
}


def test_transaction_entries_come_out_in_fhir_processing_order() -> None:
    payload = bundle(
        "transaction",
        entry("PUT", "Patient/p-1", {**PATIENT, "id": "p-1"}),
        entry("POST", "Observation", {**OBS, "subject": {"reference": "Patient/p-1"}}),
        entry("DELETE", "Observation/old", ifMatch='W/"2"'),
    )
    translation = translate_fhir(payload, request("POST", "/fhir"), EVENT)
    assert [
        (r.operation, r.resource["resourceType"], r.resource["id"], r.if_match)
        for r in translation.resources
    ] == [
        ("delete", "Observation", "old", 2),
        ("upsert", "Observation", resource_id("Observation", EVENT, "1"), None),
        ("upsert", "Patient", "p-1", None),
    ]
    assert_all_valid(translation)


def test_references_to_a_put_entry_fullurl_resolve_to_its_url_id() -> None:
    full_url = "urn:uuid:5a5c6b0e-0000-4000-8000-000000000001"
    payload = bundle(
        "transaction",
        entry("POST", "Observation", OBS),
        entry("PUT", "Patient/p-1", PATIENT, full_url),
    )
    translation = translate_fhir(payload, request("POST", "/fhir"), EVENT)
    observation = translation.resources[0].resource
    assert observation["subject"] == {"reference": "Patient/p-1"}


def test_unresolved_urn_uuid_in_a_transaction_is_rejected() -> None:
    payload = bundle("transaction", entry("POST", "Observation", OBS))
    with pytest.raises(TranslationError) as exc:
        translate_fhir(payload, request("POST", "/fhir"), EVENT)
    assert locations(exc) == {"Bundle.entry[0].resource.subject.reference"}


def test_batch_entries_may_not_refer_to_each_other() -> None:
    full_url = "urn:uuid:5a5c6b0e-0000-4000-8000-000000000001"
    payload = bundle(
        "batch", entry("POST", "Patient", PATIENT, full_url), entry("POST", "Observation", OBS)
    )
    with pytest.raises(TranslationError) as exc:
        translate_fhir(payload, request("POST", "/fhir"), EVENT)
    assert locations(exc) == {"Bundle.entry[1].resource.subject.reference"}
    assert "batch" in exc.value.issues[0].diagnostics


def test_batch_without_dependencies_translates() -> None:
    payload = bundle("batch", entry("POST", "Patient", PATIENT), entry("DELETE", "Patient/p-0"))
    translation = translate_fhir(payload, request("POST", "/fhir"), EVENT)
    assert [r.operation for r in translation.resources] == ["delete", "upsert"]


def test_two_entries_writing_one_resource_are_rejected() -> None:
    payload = bundle(
        "transaction", entry("PUT", "Patient/p-1", PATIENT), entry("DELETE", "Patient/p-1")
    )
    with pytest.raises(TranslationError) as exc:
        translate_fhir(payload, request("POST", "/fhir"), EVENT)
    assert locations(exc) == {"Bundle.entry[1].request.url"}


def test_every_bad_entry_is_reported_at_once() -> None:
    payload = bundle(
        "transaction",
        entry("GET", "Patient/p-1"),
        entry("POST", "Patient", PATIENT),
        {"resource": PATIENT},
        entry("POST", "Patient?identifier=a|1", PATIENT),
        entry("POST", "Patient", PATIENT, ifNoneExist="_count=1"),
    )
    with pytest.raises(TranslationError) as exc:
        translate_fhir(payload, request("POST", "/fhir"), EVENT)
    assert locations(exc) == {
        "Bundle.entry[0].request.method",
        "Bundle.entry[2].request",
        "Bundle.entry[3].request.url",
        "Bundle.entry[4].request.ifNoneExist",
    }


def test_every_invalid_entry_resource_is_reported_at_once() -> None:
    payload = bundle(
        "batch",
        entry("POST", "Patient", {**PATIENT, "gender": "X"}),
        entry("POST", "Patient", PATIENT),
        entry("PUT", "Patient/p-2", {**PATIENT, "birthDate": "1.1.1980"}),
    )
    with pytest.raises(TranslationError) as exc:
        translate_valid(payload, request("POST", "/fhir"), EVENT)
    assert locations(exc) == {
        "Bundle.entry[0].resource.gender",
        "Bundle.entry[2].resource.birthDate",
    }


def test_a_conditional_entry_matched_by_the_gateway_takes_the_match_id() -> None:
    """The gateway found one match for entry 0's criteria (header
    carelog.if-none-exist.ids): the entry is create-only on that id, and references to
    its fullUrl point at it; an entry without a match takes the criteria's id, one whose
    criteria's id the gateway found taken ("") the id a plain create entry would get."""
    full_url = "urn:uuid:5a5c6b0e-0000-4000-8000-000000000001"
    payload = bundle(
        "transaction",
        entry("POST", "Patient", PATIENT, full_url, ifNoneExist="identifier=a|1"),
        entry("POST", "Observation", OBS),
        entry("POST", "Patient", PATIENT, ifNoneExist="identifier=a|2"),
        entry("PUT", "Patient/p-3", PATIENT, ifNoneMatch="*"),
        entry("POST", "Patient", PATIENT, ifNoneExist="identifier=a|4"),
    )
    ids = '{"0": "found-1", "4": ""}'
    headers = {**request("POST", "/fhir"), "carelog.if-none-exist.ids": ids}
    resources = translate_fhir(payload, headers, EVENT).resources
    by_id = {r.resource["id"]: r for r in resources}
    assert by_id["found-1"].if_none_exist
    assert by_id[resource_id("Patient", "a", "2")].if_none_exist
    observation = by_id[resource_id("Observation", EVENT, "1")]
    assert observation.resource["subject"] == {"reference": "Patient/found-1"}
    assert not observation.if_none_exist
    assert by_id["p-3"].if_match == 0
    assert by_id[resource_id("Patient", EVENT, "4")].if_none_exist
    assert resource_id("Patient", "a", "4") not in by_id


@pytest.mark.parametrize("matches", ['{"1": "found-1"}', '{"0": "bad id!"}', "[]", "not json"])
def test_a_match_header_that_names_no_conditional_entry_is_refused(matches: str) -> None:
    payload = bundle(
        "transaction",
        entry("POST", "Patient", PATIENT, ifNoneExist="identifier=a|1"),
        entry("POST", "Patient", PATIENT),
    )
    headers = {**request("POST", "/fhir"), "carelog.if-none-exist.ids": matches}
    with pytest.raises(TranslationError) as exc:
        translate_fhir(payload, headers, EVENT)
    assert locations(exc) == {"carelog.if-none-exist.ids"}


@pytest.mark.parametrize(
    ("payload", "location"),
    [
        (b'{"resourceType": "Bundle", "type": "document"}', "Bundle.type"),
        (b'{"resourceType": "Patient"}', "Bundle.resourceType"),
        (b'{"resourceType": "Bundle", "type": "batch", "entry": {}}', "Bundle.entry"),
        (b"[]", "Bundle"),
        (b"{not json", "Bundle"),
    ],
)
def test_malformed_bundles(payload: bytes, location: str) -> None:
    with pytest.raises(TranslationError) as exc:
        translate_fhir(payload, request("POST", "/fhir"), EVENT)
    assert locations(exc) == {location}


# --- properties --------------------------------------------------------------------------


def test_same_input_twice_gives_identical_output() -> None:
    first = translate_fhir(TRANSACTION, request("POST", "/fhir"), EVENT)
    second = translate_fhir(TRANSACTION, request("POST", "/fhir"), EVENT)
    assert first == second
    assert orjson.dumps([r.resource for r in first.resources]) == orjson.dumps(
        [r.resource for r in second.resources]
    )


JSON = json_values(key_size=12)
KEYS = st.sampled_from(
    [
        "resourceType",
        "type",
        "entry",
        "request",
        "method",
        "url",
        "resource",
        "fullUrl",
        "reference",
        "status",
        "gender",
        "id",
        "ifNoneExist",
    ]
)
FHIRISH = st.recursive(
    st.none()
    | st.sampled_from(
        [
            "Bundle",
            "transaction",
            "batch",
            "Patient",
            "POST",
            "PUT",
            "DELETE",
            "Patient/1",
            "urn:uuid:x",
            "male",
            "final",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=40,
)
ROUTES = st.sampled_from(
    [
        ("POST", "/fhir"),
        ("POST", "/fhir/Patient"),
        ("PUT", "/fhir/Patient/p-1"),
        ("DELETE", "/fhir/Patient/p-1"),
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(JSON, FHIRISH), ROUTES)
def test_arbitrary_json_raises_nothing_but_translation_error(value: Any, route: Any) -> None:
    try:
        translation = translate_valid(orjson.dumps(value), request(*route), EVENT)
    except TranslationError as exc:
        assert exc.issues
    else:
        assert_all_valid(translation)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), ROUTES)
def test_arbitrary_bytes_raise_nothing_but_translation_error(payload: bytes, route: Any) -> None:
    with contextlib.suppress(TranslationError):
        translate_fhir(payload, request(*route), EVENT)
