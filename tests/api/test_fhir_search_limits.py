"""Search and read parameters beyond the store's limits are 400 OperationOutcomes naming the
parameter and the limit, never a 500 (issue 10, point 10); and random parameters and values
thrown at the search and read routes never get a 5xx."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from api.security.dev_token import mint_token
from projections.fhir_store.search_limits import (
    MAX_OR_VALUES,
    MAX_PARAMS,
    MAX_SORT_KEYS,
    MAX_VALUE_CHARS,
    MAX_VERSION,
)
from tests.api.conftest import SECRET
from tests.projections.fhir_store_support import changed, write_store

pytestmark = pytest.mark.kafka

PATIENT = "lim-p1"
OBSERVATION = "lim-o1"
HEADERS = {"Authorization": f"Bearer {mint_token(SECRET, 'user/*.read', 'limits-app', ttl=7200)}"}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("search-limits") / "store.sqlite"
    obs = {"resourceType": "Observation", "id": OBSERVATION, "status": "final",
           "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
           "subject": {"reference": f"Patient/{PATIENT}"},
           "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org",
                             "code": "/min"}}  # fmt: skip
    patient = {"resourceType": "Patient", "id": PATIENT, "name": [{"family": "Limit"}],
               "birthDate": "1970-01-01"}  # fmt: skip
    write_store(path, [changed(patient, 1), changed(obs, 1)])
    yield path


@pytest.fixture(scope="module")
def api(store_path: Path, make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(store={"path": store_path})


def refused(response: Any, param: str, limit: int | str) -> str:
    """The 400's diagnostics, after checking it names `param` and `limit`."""
    assert response.status_code == 400, (response.status_code, response.text[:500])
    [issue] = response.json()["issue"]
    assert issue["expression"] == [param], issue
    assert str(limit) in issue["diagnostics"], issue
    diagnostics: str = issue["diagnostics"]
    return diagnostics


def test_a_number_beyond_the_range_is_400(api: TestClient) -> None:
    for value in ("1e9999999", "-1e400", "gt1e-9999999"):
        response = api.get("/fhir/Observation", params={"value-quantity": value}, headers=HEADERS)
        refused(response, "value-quantity", "1e300")
    ok = api.get("/fhir/Observation", params={"value-quantity": "72"}, headers=HEADERS)
    assert ok.status_code == 200 and ok.json()["total"] == 1


def test_too_many_or_values_in_one_parameter_is_400(api: TestClient) -> None:
    names = ",".join(f"n{i}" for i in range(1000))
    response = api.get("/fhir/Patient", params={"name": names}, headers=HEADERS)
    refused(response, "name", MAX_OR_VALUES)
    at_limit = ",".join(["Limit", *(f"n{i}" for i in range(MAX_OR_VALUES - 1))])
    ok = api.get("/fhir/Patient", params={"name": at_limit}, headers=HEADERS)
    assert ok.status_code == 200 and ok.json()["total"] == 1


def test_too_many_parameters_is_400(api: TestClient) -> None:
    response = api.get(f"/fhir/Patient?{urlencode([('name', 'L')] * 5_000)}", headers=HEADERS)
    refused(response, "name", MAX_PARAMS)
    form = {"content-type": "application/x-www-form-urlencoded", **HEADERS}
    query = urlencode([("name", "Limit")] * 20_000)
    posted = api.post("/fhir/Patient/_search", content=query.encode(), headers=form)
    refused(posted, "name", MAX_PARAMS)
    at_limit = urlencode([("name", "Limit")] * MAX_PARAMS)
    ok = api.get(f"/fhir/Patient?{at_limit}", headers=HEADERS)
    assert ok.status_code == 200 and ok.json()["total"] == 1


def test_too_many_sort_keys_is_400(api: TestClient) -> None:
    response = api.get("/fhir/Patient", params={"_sort": ",".join(["name"] * 1001)},
                       headers=HEADERS)  # fmt: skip
    refused(response, "_sort", MAX_SORT_KEYS)
    ok = api.get("/fhir/Patient", params={"_sort": ",".join(["-name"] * MAX_SORT_KEYS)},
                 headers=HEADERS)  # fmt: skip
    assert ok.status_code == 200


def test_a_version_beyond_int64_is_400(api: TestClient) -> None:
    response = api.get(f"/fhir/Patient/{PATIENT}/_history/99999999999999999999", headers=HEADERS)
    refused(response, "vid", MAX_VERSION)
    assert (
        api.get(f"/fhir/Patient/{PATIENT}/_history/{MAX_VERSION}", headers=HEADERS).status_code
        == 404
    )


def test_an_offset_beyond_int64_is_400_in_search_and_history(api: TestClient) -> None:
    huge = "99999999999999999999"
    for url in (f"/fhir/Patient/{PATIENT}/_history", "/fhir/Patient/_history", "/fhir/_history",
                "/fhir/Patient"):  # fmt: skip
        refused(api.get(url, params={"_offset": huge}, headers=HEADERS), "_offset", "2147483648")
    refused(api.get("/fhir/_history", params={"_count": huge}, headers=HEADERS), "_count", 1000)


def test_a_value_longer_than_the_limit_is_400(api: TestClient) -> None:
    # 60,000 characters: beyond SQLite's LIKE pattern limit too.
    response = api.get("/fhir/Patient", params={"name:contains": "x" * 60_000}, headers=HEADERS)
    refused(response, "name:contains", MAX_VALUE_CHARS)
    ok = api.get("/fhir/Patient", params={"name:contains": "x" * MAX_VALUE_CHARS}, headers=HEADERS)
    assert ok.status_code == 200


# -- fuzz: random parameters and values at the search and read routes --------------------------

_NAMES = ["name", "family", "birthdate", "gender", "identifier", "_id", "_lastUpdated", "_count",
          "_offset", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total",
          "subject", "subject:Patient", "subject.name", "subject:Patient.birthdate", "code",
          "value-quantity", "date", "patient", "code:text", "code:not", "name:exact",
          "name:contains", "birthdate:missing", "_since", "general-practitioner.name.family",
          "_format", "unknown", "value-quantity:bad"]  # fmt: skip
_NUMBER = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.builds(lambda m, e: f"{m}e{e}", st.integers(-9, 9), st.integers(-(10**8), 10**8)),
)
_PREFIX = st.sampled_from(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"])
_ATOM = st.one_of(
    st.text(max_size=12),
    st.builds(str.__add__, _PREFIX, _NUMBER),
    st.builds(
        lambda p, n, u: f"{p}{n}|http://unitsofmeasure.org|{u}",
        _PREFIX,
        _NUMBER,
        st.sampled_from(["/min", "mm[Hg]", ""]),
    ),
    st.builds(
        str.__add__,
        _PREFIX,
        st.sampled_from(
            [
                "1970",
                "1970-01-01",
                "2024-13-40",
                "1970-01-01T00:00:00Z",
                "99999",
                "0001-01-01T00:00:00+01:00",
            ]
        ),
    ),
    st.sampled_from(
        [
            f"Patient/{PATIENT}",
            "Observation:subject",
            "Observation:*",
            "-name",
            "count",
            "true",
            "http://loinc.org|8867-4",
            "a|b|c",
            "\\,",
            "99999999999999999999",
        ]
    ),
)
_VALUE = st.one_of(
    _ATOM,
    st.lists(_ATOM, min_size=2, max_size=5).map(",".join),
    st.builds(lambda atom, n: ",".join([atom] * n), _ATOM, st.integers(90, 1200)),
)
_PARAMS = st.one_of(
    st.lists(st.tuples(st.sampled_from(_NAMES), _VALUE), max_size=6),
    st.builds(
        lambda pair, n: [pair] * n, st.tuples(st.sampled_from(_NAMES), _ATOM), st.integers(50, 3000)
    ),
)
_PATHS = st.sampled_from(["/fhir/Patient", "/fhir/Observation", "/fhir/Patient/_history",
                          f"/fhir/Patient/{PATIENT}/_history", "/fhir/_history",
                          f"/fhir/Patient/{PATIENT}", f"/fhir/Patient/{PATIENT}/$everything"])  # fmt: skip
_VERSIONS = st.one_of(st.integers(-5, 2**70).map(str), st.text(max_size=8))


@settings(max_examples=120, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(path=_PATHS, params=_PARAMS, version=_VERSIONS, post=st.booleans())
def test_fuzzed_search_and_read_parameters_never_get_a_server_error(
    api: TestClient, path: str, params: list[tuple[str, str]], version: str, post: bool
) -> None:
    query = urlencode(params)
    searchable = path in ("/fhir/Patient", "/fhir/Observation")
    assume(searchable or len(query) < 60_000)  # longer URLs are refused by the HTTP client
    if searchable and (post or len(query) >= 60_000):
        form = {"content-type": "application/x-www-form-urlencoded", **HEADERS}
        response = api.post(f"{path}/_search", content=query.encode(), headers=form)
    else:
        response = api.get(f"{path}?{query}", headers=HEADERS)
    assert response.status_code < 500, (path, params[:3], response.text[:300])
    vread = api.get(f"/fhir/Patient/{PATIENT}/_history/{quote(version, safe='')}", headers=HEADERS)
    assert vread.status_code < 500, (version, vread.text[:300])
