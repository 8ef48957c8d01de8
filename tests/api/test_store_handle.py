"""Store calls run on the event loop within a CPU budget, and in a worker thread past it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from api.fhir.store_handle import StoreHandle
from projections.fhir_store import FhirStore, SearchError
from projections.fhir_store.errors import OverBudget
from streams.settings import Settings
from streams.settings.fhir import FhirApiSettings
from streams.settings.store import StoreSettings
from tests.projections.fhir_store_support import changed, write_store

# Tens of millions of SQLite steps: seconds of CPU unless stopped.
LONG = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 50000000) " \
       "SELECT count(*) FROM c"  # fmt: skip
SHORT = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100) " \
        "SELECT count(*) FROM c"  # fmt: skip


def count(store: FhirStore, sql: str) -> tuple[int, str]:
    return store._conn().execute(sql).fetchone()[0], threading.current_thread().name


@pytest.fixture
def path(tmp_path: Path) -> Path:
    path = tmp_path / "store.sqlite"
    write_store(path, [changed({"resourceType": "Patient", "id": "p1"})])
    return path


def test_a_call_over_the_budget_is_stopped_and_the_connection_runs_on(path: Path) -> None:
    with FhirStore.open(path, readonly=True) as store:
        with pytest.raises(OverBudget):
            store.within(0.005, lambda s: count(s, LONG))
        assert store.within(1.0, lambda s: count(s, SHORT))[0] == 100
        # The budget ended with the call: the next statement is not stopped.
        assert count(store, "SELECT count(*) FROM resources")[0] == 1


def test_errors_within_the_budget_are_the_call_s_own(path: Path) -> None:
    with FhirStore.open(path, readonly=True) as store, pytest.raises(SearchError):
        store.within(1.0, lambda s: s.search("Patient", [("nonsense", "x")]))


def test_the_handle_answers_on_the_loop_or_past_the_budget_from_a_thread(path: Path) -> None:
    handle = StoreHandle(
        Settings(store=StoreSettings(path=path), fhir=FhirApiSettings(search_loop_budget_ms=1))
    )

    async def both() -> tuple[tuple[int, str], tuple[int, str]]:
        short = await handle.run(lambda s: count(s, SHORT))
        long = await handle.run(lambda s: count(s, LONG.replace("50000000", "300000")))
        return short, long

    try:
        (short, on), (long, off) = asyncio.run(both())
    finally:
        handle.close()
    assert (short, long) == (100, 300000)
    assert on == threading.current_thread().name  # the loop's thread: asyncio.run's
    assert off != on
