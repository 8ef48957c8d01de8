"""The FHIR store as the API sees it: opened read-only on first use, shared by all routes.

The file is CARELOG_FHIR_STORE_PATH (kept by `carelog projection`). Until it exists FHIR
reads answer 503 and writes are answered 202 at once (there is nothing to wait on).
A read by id is a primary-key lookup and runs on the event loop. Calls that may take a
while (search, history, $everything) run on the loop too, stopped after
CARELOG_FHIR_SEARCH_LOOP_BUDGET_MS of this thread's CPU and only then run again in a worker
thread: most searches take a fraction of a millisecond, less than handing them to a thread
costs (a queue, a wake-up, the GIL passed back and forth: 0.6-0.8x the gateway CPU per
search, docs/figures.md), and one over the budget does not hold the loop that serves every
other request for longer than the budget. 0 runs them all in threads, where SQLite runs
without the GIL: more CPU per search, but one process may use more than one core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from starlette.requests import Request

from api.errors import Unavailable
from projections.fhir_store import FhirStore, StoreError
from projections.fhir_store.errors import OverBudget
from streams.settings import Settings

T = TypeVar("T")


class StoreHandle:
    def __init__(self, settings: Settings) -> None:
        self.path = settings.fhir_store_file
        self.loop_budget = settings.fhir.search_loop_budget_ms / 1000
        self._store: FhirStore | None = None
        self._lock = threading.Lock()

    def get(self) -> FhirStore | None:
        """The store, or None while no projection has created it."""
        if self._store is None:
            with self._lock:
                if self._store is None and self.path.exists():
                    self._store = FhirStore.open(self.path, readonly=True)
        return self._store

    def require(self) -> FhirStore:
        try:
            store = self.get()
        except StoreError as exc:
            raise Unavailable(f"the FHIR store cannot be read: {exc}") from None
        if store is None:
            raise Unavailable(
                f"no FHIR store at {self.path} yet: `carelog projection` has not created it"
            )
        return store

    async def run(self, call: Callable[[FhirStore], T]) -> T:
        """`call(store)`, a read: on the loop within the budget, else again in a worker
        thread (each thread has its own SQLite connection)."""
        store = self.require()
        if self.loop_budget > 0:
            try:
                return store.within(self.loop_budget, call)
            except OverBudget:
                pass
        return await anyio.to_thread.run_sync(call, store)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def store_of(request: Request) -> StoreHandle:
    handle: StoreHandle = request.app.state.fhir_store
    return handle
