"""The official SQL-on-FHIR v2 test suite, run from ../shared/sql-on-fhir-v2 (never copied).

One case per suite test (file and title). Rows are compared as a multiset, as the suite's own
runner does; `expectError` means the view must be refused when loaded or fail on a resource;
`expectColumns` fixes the column order. The last test counts the passes, so a case that
regresses fails twice: on its own and in the tally.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from projections.lake.errors import ViewDefinitionError, ViewEvaluationError
from projections.lake.views import parse_view
from streams.settings import PROJECT_ROOT

SUITE = Path(
    os.environ.get(
        "CARELOG_SQL_ON_FHIR_SUITE", str(PROJECT_ROOT.parent / "shared" / "sql-on-fhir-v2")
    )
)
# Cases carelog does not pass, each with its reason. Empty: all of them pass.
LEFT_OUT: dict[tuple[str, str], str] = {}


def suite_files() -> list[Path]:
    return sorted(p for p in SUITE.glob("*.json") if p.name != "tests.schema.json")


def suite_cases() -> list[Any]:
    if not suite_files():  # one failing case rather than an empty (skipped) parametrization
        return [pytest.param("<missing>", "<missing>", id="suite-missing")]
    cases = []
    for path in suite_files():
        doc = orjson.loads(path.read_bytes())
        for test in doc["tests"]:
            key = (path.name, test["title"])
            marks = (
                [pytest.mark.xfail(reason=LEFT_OUT[key], strict=True)] if key in LEFT_OUT else []
            )
            cases.append(
                pytest.param(
                    path.name, test["title"], id=f"{path.stem}:{test['title']}", marks=marks
                )
            )
    return cases


def run_case(file_name: str, title: str) -> None:
    """Raises AssertionError when carelog's answer differs from the suite's."""
    assert (SUITE / file_name).is_file(), f"SQL-on-FHIR v2 suite not found in {SUITE}"
    doc = orjson.loads((SUITE / file_name).read_bytes())
    test = next(t for t in doc["tests"] if t["title"] == title)
    if test.get("expectError"):
        try:
            view = parse_view(test["view"], f"{file_name}:{title}")
            for resource in doc["resources"]:
                if resource.get("resourceType") == view.resource:
                    view.rows(resource)
        except (ViewDefinitionError, ViewEvaluationError):
            return
        raise AssertionError(f"{title}: expected an error, got none")
    view = parse_view(test["view"], f"{file_name}:{title}")
    rows = [
        row
        for resource in doc["resources"]
        if resource.get("resourceType") == view.resource
        for row in view.rows(resource)
    ]
    if "expectColumns" in test:
        assert [c.name for c in view.columns] == test["expectColumns"]
    want = Counter(_canonical(r) for r in test["expect"])
    got = Counter(_canonical(r) for r in rows)
    assert got == want, f"{title}:\n got  {sorted(got)}\n want {sorted(want)}"


def _canonical(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, option=orjson.OPT_SORT_KEYS)


def test_the_suite_is_where_it_is_looked_for() -> None:
    assert suite_files(), (
        f"SQL-on-FHIR v2 suite not found: looked in {SUITE} "
        "(PROJECT_ROOT/../shared/sql-on-fhir-v2, or set CARELOG_SQL_ON_FHIR_SUITE)"
    )


@pytest.mark.parametrize("file_name,title", suite_cases())
def test_sql_on_fhir_case(file_name: str, title: str) -> None:
    run_case(file_name, title)


def test_conformance_tally() -> None:
    """Every case of the suite passes but those LEFT_OUT names (134 at commit 49fc1ad)."""
    passed, failed = [], []
    for path in suite_files():
        for test in orjson.loads(path.read_bytes())["tests"]:
            key = (path.name, test["title"])
            try:
                run_case(*key)
                passed.append(key)
            except Exception:  # any failure is a failed case here
                failed.append(key)
    total = len(passed) + len(failed)
    print(f"SQL-on-FHIR v2: {len(passed)}/{total} pass")
    assert total >= 134
    assert sorted(failed) == sorted(LEFT_OUT), f"{len(passed)}/{total}; failing: {failed}"
