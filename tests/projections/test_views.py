"""ViewDefinition semantics and de-identification, as pure functions (no broker)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest

from projections.lake.deidentify import Deidentifier, shift_date
from projections.lake.errors import ViewDefinitionError, ViewEvaluationError
from projections.lake.views import SHIPPED_VIEWS, load_view, load_views, parse_view, to_arrow
from tests.projections import fhir_samples as fx


def view(select: list[dict[str, Any]], **extra: Any):  # type: ignore[no-untyped-def]
    return parse_view(
        {
            "resourceType": "ViewDefinition",
            "name": "v",
            "resource": "Patient",
            "select": select,
            **extra,
        }
    )


ID = {"column": [{"name": "id", "path": "getResourceKey()"}]}


def test_shipped_views_cover_the_nine_resource_types() -> None:
    views = load_views(SHIPPED_VIEWS)
    assert {v.resource for v in views} == {
        "Patient",
        "Encounter",
        "Observation",
        "Condition",
        "DiagnosticReport",
        "ServiceRequest",
        "ImagingStudy",
        "Immunization",
        "AllergyIntolerance",
    }
    for v in views:
        assert v.schema.names[-3:] == ["_resource_id", "_version", "_last_updated"]


def test_for_each_for_each_or_null_and_cross_join() -> None:
    names = view([ID, {"forEach": "name", "column": [{"name": "family", "path": "family"}]}])
    patient = {**fx.patient("p"), "name": [{"family": "A"}, {"family": "B"}]}
    assert names.rows(patient) == [{"id": "p", "family": "A"}, {"id": "p", "family": "B"}]
    assert names.rows({"resourceType": "Patient", "id": "q"}) == []
    or_null = view(
        [ID, {"forEachOrNull": "name", "column": [{"name": "family", "path": "family"}]}]
    )
    assert or_null.rows({"resourceType": "Patient", "id": "q"}) == [{"id": "q", "family": None}]
    cross = view(
        [
            {"forEach": "name", "column": [{"name": "f", "path": "family"}]},
            {"forEach": "identifier", "column": [{"name": "v", "path": "value"}]},
        ]
    )
    assert len(cross.rows(patient)) == 2 * 2


def test_union_all_where_and_constants() -> None:
    contacts = view(
        [
            ID,
            {
                "unionAll": [
                    {"forEach": "telecom", "column": [{"name": "value", "path": "value"}]},
                    {"forEach": "address", "column": [{"name": "value", "path": "city"}]},
                ]
            },
        ],
        where=[{"path": "gender = %g"}],
        constant=[{"name": "g", "valueCode": "male"}],
    )
    assert contacts.rows(fx.patient("p")) == [
        {"id": "p", "value": "(555)555-2004"},
        {"id": "p", "value": "Ann Arbor"},
    ]
    assert contacts.rows({**fx.patient("f"), "gender": "female"}) == []


def test_single_valued_column_with_many_values_is_an_error() -> None:
    with pytest.raises(ViewEvaluationError, match="collection"):
        view([{"column": [{"name": "given", "path": "name.given"}]}]).rows(fx.patient("p"))
    listed = view([{"column": [{"name": "given", "path": "name.given", "collection": True}]}])
    assert listed.rows(fx.patient("p")) == [{"given": ["Adam", "A."]}]


def test_bad_definitions_are_refused_loudly() -> None:
    with pytest.raises(ViewDefinitionError, match="name"):
        parse_view({"resourceType": "ViewDefinition", "name": "Bad Name", "resource": "Patient"})
    with pytest.raises(ViewDefinitionError, match="duplicate"):
        view([ID, ID])
    with pytest.raises(ViewDefinitionError, match="letters, digits"):
        view([{"column": [{"name": "_x", "path": "id"}]}])


def test_arrow_types_follow_fhir_types() -> None:
    v = view(
        [
            {
                "column": [
                    {"name": "active", "path": "active", "type": "boolean"},
                    {"name": "updated", "path": "meta.lastUpdated", "type": "instant"},
                    {"name": "n", "path": "name.count()", "type": "integer"},
                    {"name": "name", "path": "name.first()"},
                ]
            }
        ]
    )
    rows = v.rows(fx.patient("p"))
    table = to_arrow(v, rows, {"_resource_id": ["p"], "_version": [1], "_last_updated": [None]})
    assert table.schema.field("active").type == pa.bool_()
    assert table.schema.field("updated").type == pa.timestamp("us", "UTC")
    assert table.column("n").to_pylist() == [1]
    assert table.column("name").to_pylist()[0].startswith('{"family":"Everyman"')  # JSON text


def test_deidentify_drops_identifiers_hashes_ids_and_shifts_dates_per_patient() -> None:
    deid = Deidentifier(b"0123456789abcdef-secret")
    patient = deid(fx.patient("p1"))
    obs = deid(fx.observation("o1", "p1"))
    assert not {"name", "identifier", "telecom"} & patient.keys()
    assert patient["address"] == [{"state": "MI", "country": "USA"}]
    assert patient["id"] == deid.resource_id("Patient", "p1") != "p1"
    assert obs["subject"]["reference"] == f"Patient/{patient['id']}"
    shift = timedelta(days=deid.shift_days("Patient/p1"))
    assert patient["birthDate"] == shift_date("1980-06-15", shift)
    assert obs["effectiveDateTime"] == shift_date("2024-03-01T07:45:00Z", shift)
    assert obs["code"]["coding"][0]["code"] == "6690-2"  # codes are not dates
    assert Deidentifier(b"another-secret-of-16+").resource_id("Patient", "p1") != patient["id"]


def test_shift_date_keeps_precision() -> None:
    assert shift_date("1980", timedelta(days=10)) == "1980"
    assert shift_date("1980-12", timedelta(days=40)) == "1981-01"
    assert shift_date("2024-02-28", timedelta(days=2)) == "2024-03-01"
    assert (
        shift_date("2024-02-28T10:00:00+02:00", timedelta(days=-1)) == "2024-02-27T10:00:00+02:00"
    )
    assert shift_date("not a date", timedelta(days=1)) == "not a date"


def test_date_shift_is_never_zero() -> None:
    from projections.lake.deidentify import MAX_SHIFT_DAYS, Deidentifier

    deid = Deidentifier(b"a-test-secret-of-32-bytes-length")
    shifts = {deid.shift_days(f"Patient/{i}") for i in range(5000)}
    assert 0 not in shifts
    assert min(shifts) >= -MAX_SHIFT_DAYS and max(shifts) <= MAX_SHIFT_DAYS


def test_a_view_without_name_or_resource_type_gets_a_table_name(tmp_path: Any) -> None:
    bare = {"resource": "MedicationRequest", "select": [ID]}
    assert parse_view(bare).name == "medication_request"
    path = tmp_path / "my_requests.json"
    path.write_bytes(orjson.dumps(bare))
    assert load_view(path).name == "my_requests"
    with pytest.raises(ViewDefinitionError, match="resourceType"):
        parse_view({**bare, "resourceType": "Patient"})


def test_mistakes_are_refused_when_the_view_is_loaded() -> None:
    with pytest.raises(ViewDefinitionError, match="%nope is not defined"):
        view([{"column": [{"name": "x", "path": "name.where(use = %nope).family"}]}])
    with pytest.raises(ViewDefinitionError, match="not a FHIRPath expression"):
        view([{"forEach": 1, "column": [{"name": "x", "path": "family"}]}])
    with pytest.raises(ViewDefinitionError, match="does not parse"):
        view([{"column": [{"name": "x", "path": "name.(("}]}])


def test_a_where_that_is_not_boolean_is_an_error_not_zero_rows() -> None:
    family = view([ID], where=[{"path": "name.family.first()"}])
    with pytest.raises(ViewEvaluationError, match="not a boolean"):
        family.rows(fx.patient("p"))


def test_repeat_walks_nested_items_with_their_row_index() -> None:
    answers = parse_view(
        {
            "resource": "QuestionnaireResponse",
            "select": [
                {
                    "repeat": ["item", "answer.item"],
                    "column": [
                        {"name": "link", "path": "linkId"},
                        {"name": "n", "path": "%rowIndex", "type": "integer"},
                    ],
                }
            ],
        }
    )
    qr = {
        "resourceType": "QuestionnaireResponse",
        "item": [
            {"linkId": "1", "item": [{"linkId": "1.1", "answer": [{"item": [{"linkId": "a"}]}]}]},
            {"linkId": "2"},
        ],
    }
    assert answers.rows(qr) == [
        {"link": "1", "n": 0},
        {"link": "1.1", "n": 1},
        {"link": "a", "n": 2},
        {"link": "2", "n": 3},
    ]
