"""Search parameters by type and modifier, on a small store written by hand (no broker)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from projections.fhir_store import FhirStore, SearchError, SearchResult
from projections.fhir_store.errors import StoreError
from projections.fhir_store.schema import connect
from projections.fhir_store.search import Searcher
from tests.projections.fhir_store_support import Offsets, changed, store_with

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MRN = "urn:oid:1.2.36.146.595.217.0.1"

RESOURCES: list[dict[str, Any]] = [
    {"resourceType": "Patient", "id": "p1", "active": True, "gender": "female",
     "birthDate": "1980-05-03", "identifier": [{"system": MRN, "value": "12345"}],
     "name": [{"family": "Müller", "given": ["Anna", "Maria"]}],
     "telecom": [{"system": "email", "value": "anna@example.org"}, {"system": "phone", "value": "555-1"}],
     "address": [{"city": "Zürich", "postalCode": "8001", "country": "CH"}],
     "managingOrganization": {"reference": "Organization/org1"}},
    {"resourceType": "Patient", "id": "p2", "active": False, "gender": "male",
     "birthDate": "1975", "identifier": [{"system": MRN, "value": "67890"}],
     "name": [{"family": "Muller", "given": ["Bob"]}], "deceasedDateTime": "2020-01-01"},
    {"resourceType": "Patient", "id": "p3", "gender": "male", "birthDate": "1990-12-31",
     "name": [{"family": "Smith", "given": ["Carl"], "text": "Carl Smith"}]},
    {"resourceType": "Organization", "id": "org1", "name": "General Hospital"},
    {"resourceType": "Practitioner", "id": "dr1", "name": [{"family": "House"}]},
    {"resourceType": "Observation", "id": "o1", "status": "final",
     "code": {"coding": [{"system": LOINC, "code": "8867-4", "display": "Heart rate"}]},
     "subject": {"reference": "Patient/p1"}, "performer": [{"reference": "Practitioner/dr1"}],
     "effectiveDateTime": "2024-02-01T10:00:00Z",
     "valueQuantity": {"value": 72, "unit": "beats/min", "system": UCUM, "code": "/min"}},
    {"resourceType": "Observation", "id": "o2", "status": "preliminary",
     "code": {"coding": [{"system": LOINC, "code": "8310-5", "display": "Body temperature"}]},
     "subject": {"reference": "Patient/p1"},
     "effectivePeriod": {"start": "2024-02-02T08:00:00Z", "end": "2024-02-02T09:00:00Z"},
     "valueQuantity": {"value": 37.5, "unit": "Cel", "system": UCUM, "code": "Cel"}},
    {"resourceType": "Observation", "id": "o3", "status": "final",
     "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
     "subject": {"reference": "http://other.example/fhir/Patient/p2"},
     "effectiveDateTime": "2024-03", "valueQuantity": {"value": 100, "unit": "/min"}},
    {"resourceType": "Observation", "id": "o4", "status": "final",
     "code": {"text": "Free text note"}, "subject": {"reference": "Patient/p3"},
     "valueString": "all good"},
    {"resourceType": "Encounter", "id": "e1", "status": "finished",
     "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
     "subject": {"reference": "Patient/p1"},
     "period": {"start": "2024-02-01T09:00:00Z", "end": "2024-02-01T11:00:00Z"}},
    {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
     "code": {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]},
     "onsetAge": {"value": 40, "unit": "a", "system": UCUM, "code": "a"}},
    {"resourceType": "Device", "id": "d1", "patient": {"reference": "Patient/p1"},
     "url": "http://devices.example/d/1", "manufacturer": "Acme"},
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirStore]:
    path: Path = tmp_path_factory.mktemp("search") / "store.sqlite"
    with store_with(path, RESOURCES) as store:
        yield store


def ids(store: FhirStore, resource_type: str, *params: tuple[str, str]) -> list[str]:
    return [m.id for m in store.search(resource_type, list(params)).matches]


def test_string_default_is_starts_with_case_and_accent_insensitive(store: FhirStore) -> None:
    assert ids(store, "Patient", ("family", "mul")) == ["p1", "p2"]
    assert ids(store, "Patient", ("family", "MÜLLER")) == ["p1", "p2"]
    assert ids(store, "Patient", ("name", "maria")) == ["p1"]  # any HumanName part
    assert ids(store, "Patient", ("name", "carl smith")) == ["p3"]  # HumanName.text
    assert ids(store, "Patient", ("address-city", "zur")) == ["p1"]
    assert ids(store, "Patient", ("family", "ller")) == []


def test_string_exact_and_contains(store: FhirStore) -> None:
    assert ids(store, "Patient", ("family:exact", "Müller")) == ["p1"]
    assert ids(store, "Patient", ("family:exact", "müller")) == []
    assert ids(store, "Patient", ("family:contains", "ULL")) == ["p1", "p2"]
    assert ids(store, "Observation", ("value-string", "all")) == ["o4"]


def test_token_forms(store: FhirStore) -> None:
    assert ids(store, "Observation", ("code", "8867-4")) == ["o1", "o3"]
    assert ids(store, "Observation", ("code", f"{LOINC}|8867-4")) == ["o1", "o3"]
    assert ids(store, "Observation", ("code", "|8867-4")) == []  # all have a system
    assert ids(store, "Observation", ("code", f"{LOINC}|")) == ["o1", "o2", "o3"]
    assert ids(store, "Observation", ("code", "8867-4,8310-5")) == ["o1", "o2", "o3"]
    assert ids(store, "Patient", ("identifier", f"{MRN}|12345")) == ["p1"]
    assert ids(store, "Patient", ("gender", "male")) == ["p2", "p3"]
    assert ids(store, "Patient", ("active", "true")) == ["p1"]
    assert ids(store, "Patient", ("email", "anna@example.org")) == ["p1"]
    assert ids(store, "Patient", ("phone", "anna@example.org")) == []
    assert ids(store, "Patient", ("telecom", "phone|555-1")) == ["p1"]
    assert ids(store, "Patient", ("deceased", "true")) == ["p2"]
    assert ids(store, "Encounter", ("class", "AMB")) == ["e1"]


def test_token_not_and_text(store: FhirStore) -> None:
    assert ids(store, "Observation", ("code:not", "8867-4")) == ["o2", "o4"]
    assert ids(store, "Observation", ("status:not", "final")) == ["o2"]
    assert ids(store, "Observation", ("code:text", "heart")) == ["o1"]
    assert ids(store, "Observation", ("code:text", "free")) == ["o4"]


def test_date_precision_and_prefixes(store: FhirStore) -> None:
    assert ids(store, "Patient", ("birthdate", "1980")) == ["p1"]
    assert ids(store, "Patient", ("birthdate", "1980-05")) == ["p1"]
    assert ids(store, "Patient", ("birthdate", "1980-05-03")) == ["p1"]
    assert ids(store, "Patient", ("birthdate", "1975-06")) == []  # 1975 is wider than June
    assert ids(store, "Patient", ("birthdate", "ne1980")) == ["p2", "p3"]
    assert ids(store, "Patient", ("birthdate", "lt1980")) == ["p2"]
    assert ids(store, "Patient", ("birthdate", "le1980-05-03")) == ["p1", "p2"]
    assert ids(store, "Patient", ("birthdate", "gt1980-05-03")) == ["p3"]
    assert ids(store, "Patient", ("birthdate", "ge1980-05-03")) == ["p1", "p3"]
    assert ids(store, "Patient", ("birthdate", "ge1975-06")) == [
        "p1",
        "p2",
        "p3",
    ]  # 1975 ends after June
    assert ids(store, "Patient", ("birthdate", "sa1975-06")) == ["p1", "p3"]  # 1975 starts before
    assert ids(store, "Patient", ("birthdate", "eb1980-05-04")) == ["p1", "p2"]
    assert ids(store, "Patient", ("birthdate", "ge1970"), ("birthdate", "lt1985")) == ["p1", "p2"]


def test_date_periods_and_times(store: FhirStore) -> None:
    assert ids(store, "Observation", ("date", "2024-02-02")) == ["o2"]  # period within the day
    assert ids(store, "Observation", ("date", "2024-02")) == ["o1", "o2"]
    assert ids(store, "Observation", ("date", "2024-02-01T10:00")) == ["o1"]
    assert ids(store, "Observation", ("date", "ge2024-02-02T08:30:00Z")) == ["o2", "o3"]
    assert ids(store, "Observation", ("date", "sa2024-02-01")) == ["o2", "o3"]
    assert ids(store, "Observation", ("date", "eb2024-02-02")) == ["o1"]
    assert ids(store, "Encounter", ("date", "2024-02-01T10:30:00+00:00")) == []  # e1 is wider
    assert ids(store, "Encounter", ("date", "ge2024-02-01T10:30:00Z")) == ["e1"]
    assert ids(store, "Encounter", ("date", "2024-02-01")) == ["e1"]


def test_reference_forms(store: FhirStore) -> None:
    assert ids(store, "Observation", ("subject", "Patient/p1")) == ["o1", "o2"]
    assert ids(store, "Observation", ("subject", "p1")) == ["o1", "o2"]
    assert ids(store, "Observation", ("subject:Patient", "p1")) == ["o1", "o2"]
    assert ids(store, "Observation", ("patient", "p2")) == ["o3"]  # absolute URL
    assert ids(store, "Observation", ("subject", "http://x.example/fhir/Patient/p1")) == [
        "o1",
        "o2",
    ]
    assert ids(store, "Observation", ("performer", "Practitioner/dr1")) == ["o1"]
    assert ids(store, "Device", ("patient", "p1")) == ["d1"]


def test_chains(store: FhirStore) -> None:
    assert ids(store, "Observation", ("subject:Patient.name", "anna")) == ["o1", "o2"]
    assert ids(store, "Observation", ("patient.identifier", f"{MRN}|67890")) == ["o3"]
    assert ids(store, "Observation", ("subject.family:exact", "Smith")) == ["o4"]
    assert ids(store, "Observation", ("patient.organization.name", "general")) == ["o1", "o2"]
    assert ids(store, "Encounter", ("patient.gender", "female")) == ["e1"]
    with pytest.raises(SearchError):
        store.search("Observation", [("status.name", "x")])


def test_quantity_and_number_precision(store: FhirStore) -> None:
    assert ids(store, "Observation", ("value-quantity", "72")) == ["o1"]
    assert ids(store, "Observation", ("value-quantity", "72.4")) == []  # [72.35, 72.45)
    assert ids(store, "Observation", ("value-quantity", "7.2e1")) == ["o1"]
    assert ids(store, "Observation", ("value-quantity", f"72|{UCUM}|/min")) == ["o1"]
    assert ids(store, "Observation", ("value-quantity", "72||/min")) == ["o1"]
    assert ids(store, "Observation", ("value-quantity", "100||/min")) == ["o3"]  # unit matches
    assert ids(store, "Observation", ("value-quantity", "gt50")) == ["o1", "o3"]
    assert ids(store, "Observation", ("value-quantity", "le37.5")) == ["o2"]
    assert ids(store, "Observation", ("value-quantity", f"ge37|{UCUM}|Cel")) == ["o2"]
    assert ids(store, "Observation", ("value-quantity", "ne72")) == ["o2", "o3"]
    assert ids(store, "Condition", ("onset-age", "lt41")) == ["c1"]


def test_uri_and_missing(store: FhirStore) -> None:
    assert ids(store, "Device", ("url", "http://devices.example/d/1")) == ["d1"]
    assert ids(store, "Device", ("url:below", "http://devices.example/")) == ["d1"]
    assert ids(store, "Device", ("url:above", "http://devices.example/d/1/extra")) == ["d1"]
    assert ids(store, "Patient", ("death-date:missing", "false")) == ["p2"]
    assert ids(store, "Patient", ("address:missing", "true")) == ["p2", "p3"]


def test_id_last_updated_and_compartment(store: FhirStore) -> None:
    assert ids(store, "Patient", ("_id", "p3,p1")) == ["p1", "p3"]
    assert ids(store, "Patient", ("_lastUpdated", "ge2024-01-01")) == ["p1", "p2", "p3"]
    assert ids(store, "Patient", ("_lastUpdated", "lt2024-01-01")) == []
    result = store.search("Observation", [], compartment=("Patient", "p1"))
    assert [m.id for m in result.matches] == ["o1", "o2"]
    assert [m.id for m in store.search("Patient", [], ("Patient", "p1")).matches] == ["p1"]
    everything = store.patient_compartment("p1")
    assert sorted(r.key for r in everything) == sorted(
        ["Patient/p1", "Observation/o1", "Observation/o2", "Encounter/e1", "Condition/c1"]
    )  # the Device is not in the R4 patient compartment


def test_sort(store: FhirStore) -> None:
    assert ids(store, "Patient", ("_sort", "birthdate")) == ["p2", "p1", "p3"]
    assert ids(store, "Patient", ("_sort", "-birthdate")) == ["p3", "p1", "p2"]
    assert ids(store, "Patient", ("_sort", "gender,-family")) == ["p1", "p3", "p2"]
    assert ids(store, "Observation", ("_sort", "-_id")) == ["o4", "o3", "o2", "o1"]
    assert ids(store, "Observation", ("_sort", "date")) == ["o1", "o2", "o3", "o4"]  # none last
    with pytest.raises(SearchError):
        store.search("Patient", [("_sort", "nonsense")])


def test_count_paging_is_stable(store: FhirStore) -> None:
    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = store.search("Observation", [("_count", "3"), ("_offset", str(offset))])
        assert page.total == 4
        seen.extend(m.id for m in page.matches)
        offset = page.next_offset
    assert seen == ["o1", "o2", "o3", "o4"]
    again = store.search("Observation", [("_count", "3"), ("_offset", "0")])
    assert [m.id for m in again.matches] == seen[:3]


def test_include_and_revinclude(store: FhirStore) -> None:
    result = store.search("Observation", [("_id", "o1"), ("_include", "Observation:subject")])
    assert [r.key for r in result.included] == ["Patient/p1"]
    result = store.search("Observation", [("_id", "o1"), ("_include", "Observation:*")])
    assert sorted(r.key for r in result.included) == ["Patient/p1", "Practitioner/dr1"]
    result = store.search("Observation", [("_id", "o1"), ("_include", "Observation:subject"),
                                          ("_include:iterate", "Patient:organization")])  # fmt: skip
    assert [r.key for r in result.included] == ["Patient/p1", "Organization/org1"]
    result = store.search("Patient", [("_id", "p1"), ("_revinclude", "Observation:subject"),
                                      ("_revinclude", "Encounter:patient")])  # fmt: skip
    assert sorted(r.key for r in result.included) == [
        "Encounter/e1",
        "Observation/o1",
        "Observation/o2",
    ]


def test_summary_count_elements_total(store: FhirStore) -> None:
    result = store.search("Observation", [("code", "8867-4"), ("_summary", "count")])
    assert (result.matches, result.total) == ([], 2)
    assert store.search("Observation", [("_total", "none")]).total is None
    assert store.search("Observation", [("_count", "0")]).total == 4
    (match,) = store.search("Observation", [("_id", "o1"), ("_elements", "status,value")]).matches
    body = orjson.loads(match.json)
    assert set(body) == {"resourceType", "id", "meta", "status", "valueQuantity"}
    assert any(t["code"] == "SUBSETTED" for t in body["meta"]["tag"])


@pytest.mark.parametrize(
    "params",
    [
        [("nonsense", "x")],
        [("family:below", "x")],
        [("birthdate", "yesterday")],
        [("value-quantity", "abc")],
        [("_count", "-1")],
        [("_summary", "true")],
        [("_include", "Observation")],
        [("subject:Medication", "x")],
        [("_has", "Observation:subject:code=1")],
    ],
)
def test_bad_searches_raise_search_error(store: FhirStore, params: list[tuple[str, str]]) -> None:
    with pytest.raises(SearchError) as raised:
        store.search("Observation" if params[0][0] != "family:below" else "Patient", params)
    assert raised.value.param


def test_supported_search_params_lists_the_official_definitions(store: FhirStore) -> None:
    supported = store.supported_search_params()
    assert set(supported) == set(store.resource_types())
    patient = {name: kind for name, kind, _ in supported["Patient"]}
    assert patient["family"] == "string" and patient["birthdate"] == "date"
    assert patient["_id"] == "token" and patient["_lastUpdated"] == "date"
    assert "code-value-quantity" not in {n for n, _, _ in supported["Observation"]}  # composite


def test_a_search_beyond_what_sqlite_runs_is_a_search_error(store: FhirStore) -> None:
    # Within the search limits, but on a connection whose SQLite expression depth is lowered
    # to 20: the statement is refused at prepare time, as deep ones are at SQLite's 1000.
    conn = connect(store.path, readonly=True)
    conn.setlimit(sqlite3.SQLITE_LIMIT_EXPR_DEPTH, 20)
    searcher = Searcher(conn, store.registry)
    try:
        with pytest.raises(SearchError) as raised:
            searcher.search("Patient", [("name", ",".join(f"n{i}" for i in range(30)))])
        assert "too large for the store" in raised.value.message
        assert "Expression tree is too large" in raised.value.message
        assert [m.id for m in searcher.search("Patient", [("name", "smith")]).matches] == ["p3"]
    finally:
        conn.close()


def statements_of(store: FhirStore, resource_type: str, params: list[tuple[str, str]]) -> tuple[
    SearchResult, list[str]
]:  # fmt: skip
    """The search's result and every SQL statement it ran."""
    conn = connect(store.path, readonly=True)
    ran: list[str] = []
    conn.set_trace_callback(ran.append)
    try:
        return Searcher(conn, store.registry).search(resource_type, params), ran
    finally:
        conn.close()


def test_a_page_holding_every_match_gives_the_total_without_counting(store: FhirStore) -> None:
    result, ran = statements_of(store, "Observation", [("subject", "Patient/p1")])
    assert ([m.id for m in result.matches], result.total) == (["o1", "o2"], 2)
    assert not [sql for sql in ran if "count(*)" in sql.lower()], ran
    # A page past the end, or a full one, still counts: the page alone cannot tell.
    for params, total in (
        ([("subject", "Patient/p1"), ("_count", "1")], 2),
        ([("subject", "Patient/p1"), ("_offset", "5")], 2),
        ([("subject", "Patient/p1"), ("_count", "1"), ("_offset", "1")], 2),
    ):
        result, ran = statements_of(store, "Observation", params)
        assert result.total == total, params
    result, ran = statements_of(store, "Observation", [("_count", "3"), ("_offset", "3")])
    assert ([m.id for m in result.matches], result.total) == (["o4"], 4)
    assert not [sql for sql in ran if "count(*)" in sql.lower()], ran


def steps_of(path: Path, resource_type: str, params: list[tuple[str, str]]) -> int:
    """SQLite virtual machine steps (in thousands, roughly) one search took."""
    store = FhirStore.open(path, readonly=True)
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    try:
        store._conn().set_progress_handler(count, 1000)
        store.search(resource_type, params)
        return steps[0]
    finally:
        store.close()


def test_choosing_the_driver_costs_what_the_best_one_costs(tmp_path: Path) -> None:
    # patient=p1&code=X: p1 has one Observation; X is common. Counting X's index rows to
    # compare with p1's one must stop at one, not read thousands of them.
    costs = []
    for common in (50, 3000):
        resources: list[dict[str, object]] = [{"resourceType": "Patient", "id": "p1"}]
        resources += [
            {"resourceType": "Observation", "id": f"o{n}", "status": "final",
             "code": {"coding": [{"system": LOINC, "code": "8867-4"}]},
             "subject": {"reference": f"Patient/{'p1' if n == 0 else 'p2'}"}}
            for n in range(common)
        ]  # fmt: skip
        path = tmp_path / f"store-{common}.sqlite"
        with store_with(path, resources) as store:
            found = store.search("Observation", [("patient", "p1"), ("code", f"{LOINC}|8867-4")])
            assert [m.id for m in found.matches] == ["o0"]
        costs.append(
            steps_of(path, "Observation", [("patient", "p1"), ("code", f"{LOINC}|8867-4")])
        )
    assert costs[1] <= costs[0] + 2, costs


def test_referring_finds_what_a_reference_search_finds(tmp_path: Path) -> None:
    """The reads' Consent check asks `referring` on every read: it must answer as the search
    `Consent?patient=Patient/x` does, after a Consent moves to another patient, is deleted,
    or names its patient twice."""

    def consent(cid: str, patient: str, also: str | None = None) -> dict[str, Any]:
        actors = [{"reference": {"reference": f"Patient/{also}"}}] if also else []
        return {"resourceType": "Consent", "id": cid, "status": "active",
                "scope": {"text": "s"}, "category": [{"text": "c"}],
                "patient": {"reference": f"Patient/{patient}"},
                "provision": {"type": "deny", "actor": actors}}  # fmt: skip

    resources = [consent("c1", "p1"), consent("c2", "p1", also="p1"), consent("c3", "p2"),
                 consent("c4", "p2"), consent("c5", "p3")]  # fmt: skip
    with FhirStore.open(tmp_path / "s.sqlite") as store:
        store.applier().apply(Offsets().records([
            *(changed(r) for r in resources),
            changed(consent("c3", "p1"), version=2),  # moved from p2 to p1
            changed(consent("c5", "p3"), version=2, delete=True),
        ]))  # fmt: skip
        for patient in ("p1", "p2", "p3", "p4"):
            searched = store.search("Consent", [("patient", f"Patient/{patient}")]).matches
            found = store.referring("Consent", "patient", "Patient", patient)
            assert [(r.key, r.version, r.json) for r in found] == [
                (r.key, r.version, r.json) for r in searched
            ], patient
        assert [r.id for r in store.referring("Consent", "patient", "Patient", "p1")] == [
            "c1",
            "c2",
            "c3",
        ]
        with pytest.raises(StoreError, match="no reference search parameter"):
            store.referring("Consent", "status", "Patient", "p1")
