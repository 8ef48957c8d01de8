"""FhirStore: the read side of the projection, for the FHIR REST API (and its writer)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from projections.fhir_store.apply import Applier
from projections.fhir_store.compartment import in_compartment
from projections.fhir_store.definitions import BUILTIN, Registry, load_registry
from projections.fhir_store.errors import OverBudget, StoreError
from projections.fhir_store.fhir_dates import instant_us
from projections.fhir_store.index_processes import IndexProcesses
from projections.fhir_store.models import Rejection, SearchResult, StoredResource
from projections.fhir_store.point_in_time import NEXT_LU, current_during, search_at, version_at
from projections.fhir_store.reads import CURRENT, VERSION, stored
from projections.fhir_store.schema import check_compatible, connect, finish_bulk, initialize
from projections.fhir_store.search import Searcher
from projections.fhir_store.search_limits import MAX_HISTORY_COUNT, MAX_OFFSET, MAX_VERSION

T = TypeVar("T")
_BUDGET_CHECK_STEPS = 1000  # SQLite VM steps between two looks at the clock (a few µs)


class FhirStore:
    """A FHIR store file. Thread-safe: each thread gets its own SQLite connection.

    Open with `FhirStore.open(path, readonly=True)` in API nodes; the projection process
    opens it writable (one writer per file).
    """

    def __init__(self, path: Path, readonly: bool, registry: Registry, bulk: bool = False) -> None:
        self._index_processes: IndexProcesses | None = None
        self.path = path
        self.readonly = readonly
        self.bulk = bulk
        self.registry = registry
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: Path | str,
        readonly: bool = False,
        bulk: bool = False,
        index_processes: int = 0,
    ) -> FhirStore:
        """Open (or, writable, create) the store at `path`.

        `bulk=True` builds a fresh file nobody reads yet (rebuild, verify): no journal, and
        the search indexes are created by `finish_bulk` after the load, in one pass. With
        `index_processes`, that many other processes extract and write the index rows
        (projections/fhir_store/index_processes.py).

        Raises StoreError if a read-only store does not exist, RebuildRequired if it was
        built with other search definitions.
        """
        path = Path(path)
        registry = load_registry()
        if readonly and not path.exists():
            raise StoreError(f"no FHIR store at {path}: run `carelog projection` first")
        if bulk and (readonly or path.exists()):
            raise StoreError(
                f"a bulk build writes a fresh file nobody reads yet: {path} exists or was "
                "asked for read-only; rebuild into a new path"
            )
        store = cls(path, readonly, registry, bulk)
        conn = store._conn()
        if readonly:
            try:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{path} is not a FHIR store: {exc}") from exc
            check_compatible(meta, registry)
        else:
            initialize(conn, registry, bulk)
        if bulk and index_processes > 0:
            store._index_processes = IndexProcesses(path, index_processes)
        return store

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self.readonly, self.bulk)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        if self._index_processes is not None:
            self._index_processes.close()
            self._index_processes = None
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> FhirStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def within(self, seconds: float, call: Callable[[FhirStore], T]) -> T:
        """`call(self)` on this thread, its SQLite statements stopped once they have used
        `seconds` of this thread's CPU: then OverBudget is raised and nothing is answered
        (reads only: the caller runs the call again elsewhere, where it may take its time).

        CPU, not wall-clock time: on a busy machine a cheap search descheduled for a few
        ms is not an expensive one. The wall clock is looked at first (a fraction of the
        cost of the thread's CPU clock), the CPU clock only once it has passed the budget."""
        wall, cpu = time.perf_counter() + seconds, time.thread_time() + seconds
        conn = self._conn()
        conn.set_progress_handler(
            lambda: time.perf_counter() > wall and time.thread_time() > cpu, _BUDGET_CHECK_STEPS
        )
        try:
            return call(self)
        except sqlite3.OperationalError as exc:
            if "interrupted" in str(exc) and time.thread_time() > cpu:
                raise OverBudget(f"over the {seconds * 1000:.1f} ms budget") from None
            raise
        finally:
            conn.set_progress_handler(None, 0)

    # -- the writer --------------------------------------------------------------------------

    def applier(self) -> Applier:
        """The batch applier (writable stores only; one per store file)."""
        if self.readonly:
            raise StoreError("a read-only FhirStore cannot apply changes")
        return Applier(self._conn(), self._index_processes)

    def finish_bulk(self) -> None:
        """End a bulk build: create the search indexes, switch the file to WAL mode.

        Close every other connection to the file first (journal mode changes need that).
        """
        if not self.bulk:
            raise StoreError("finish_bulk is for a store opened with bulk=True")
        if self._index_processes is not None:
            self._index_processes.finish()
            self._index_processes = None
        finish_bulk(self._conn())
        fd = os.open(self.path, os.O_RDONLY)  # it was written without syncing
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- reads -------------------------------------------------------------------------------

    def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version; `deleted=True` (json "") when the last change deleted it."""
        row = (
            self._conn()
            .execute(f"{CURRENT} WHERE r.type = ? AND r.id = ?", (resource_type, resource_id))
            .fetchone()
        )
        return None if row is None else stored(row)

    def read_at(self, resource_type: str, resource_id: str, at_us: int) -> StoredResource | None:
        """The version current at `at_us` (µs since the epoch): `deleted=True` if it was
        deleted then, None if it did not exist yet."""
        return version_at(self._conn(), resource_type, resource_id, at_us)

    def search_at(
        self, resource_type: str, at_us: int, ids: list[str] | None, count: int, offset: int
    ) -> tuple[list[StoredResource], int]:
        """The resources of a type as they were at `at_us` (live then), by id; a page and
        the total. Point-in-time search selects by type and _id only (the indexes hold the
        current versions)."""
        return search_at(self._conn(), resource_type, at_us, ids, count, offset)

    def vread(
        self,
        resource_type: str,
        resource_id: str,
        version: int,
        compartment: tuple[str, str] | None = None,
    ) -> StoredResource | None:
        """That version, or None; with `compartment`, None unless that version was in it."""
        if not 0 <= version <= MAX_VERSION:
            return None  # no such version (and beyond what SQLite can compare)
        if compartment is not None:
            kept = in_compartment(self._versions(resource_type, resource_id, version), compartment)
            return kept[-1] if kept and kept[-1].version == version else None
        row = (
            self._conn()
            .execute(
                f"{VERSION} WHERE r.type = ? AND r.id = ? AND v.version = ?",
                (resource_type, resource_id, version),
            )
            .fetchone()
        )
        return None if row is None else stored(row)

    def _versions(
        self, resource_type: str, resource_id: str, up_to: int | None = None
    ) -> list[StoredResource]:
        """Every version of one resource (up to `up_to`), oldest first."""
        sql = f"{VERSION} WHERE r.type = ? AND r.id = ?"
        args: list[Any] = [resource_type, resource_id]
        if up_to is not None:
            sql += " AND v.version <= ?"
            args.append(up_to)
        rows = self._conn().execute(f"{sql} ORDER BY v.version", args).fetchall()
        return [stored(r) for r in rows]

    def history(
        self,
        resource_type: str | None = None,
        resource_id: str | None = None,
        since: datetime | None = None,
        count: int = 50,
        offset: int = 0,
        compartment: tuple[str, str] | None = None,
        at: tuple[int, int] | None = None,
    ) -> tuple[list[StoredResource], int]:
        """Versions newest first (instance, type or system history) and how many in all.

        `at` (lo, hi in µs, the FHIR `_at` period): only the versions that were current at
        some moment of it.

        Deleted versions are included (`deleted=True`), as _history shows them. With
        `compartment` (one resource's history only), only the versions that were in it are
        listed and counted (projections.fhir_store.compartment).
        """
        if resource_id is not None and resource_type is None:
            raise StoreError("history of an id needs its resource type")
        count = max(0, min(count, MAX_HISTORY_COUNT))
        offset = max(0, min(offset, MAX_OFFSET))
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        if compartment is not None:
            if resource_type is None or resource_id is None:
                raise StoreError("history within a compartment is served for one resource only")
            every = self._versions(resource_type, resource_id)
            kept = in_compartment(every, compartment)
            if at is not None:
                during = current_during(every, *at)
                kept = [v for v in kept if v.version in during]
            if since is not None:
                kept = [v for v in kept if v.last_updated >= since]
            kept.sort(key=lambda v: (v.last_updated, v.version), reverse=True)
            return kept[offset : offset + count], len(kept)
        where: list[str] = []
        args: list[Any] = []
        if resource_type is not None:
            where.append("r.type = ?")
            args.append(resource_type)
        if resource_id is not None:
            where.append("r.id = ?")
            args.append(resource_id)
        if since is not None:
            where.append("v.lu >= ?")
            args.append(instant_us(since.astimezone(UTC).isoformat()))
        if at is not None:
            where.append(f"v.lu <= ? AND {NEXT_LU} > ?")
            args += [at[1], at[0]]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        conn = self._conn()
        total = conn.execute(
            f"SELECT count(*) FROM versions v JOIN resources r ON r.rid = v.rid {clause}", args
        ).fetchone()[0]
        rows = conn.execute(
            f"{VERSION} {clause} ORDER BY v.lu DESC, r.type, r.id, v.version DESC LIMIT ? OFFSET ?",
            [*args, count, offset],
        ).fetchall()
        return [stored(r) for r in rows], total

    def search(
        self,
        resource_type: str,
        params: list[tuple[str, str]],
        compartment: tuple[str, str] | None = None,
    ) -> SearchResult:
        """FHIR search; see projections.fhir_store (package docstring) for what is supported."""
        return Searcher(self._conn(), self.registry).search(resource_type, params, compartment)

    def referring(
        self, resource_type: str, param: str, target_type: str, target_id: str
    ) -> list[StoredResource]:
        """The live resources of `resource_type` whose reference parameter `param` points at
        target_type/target_id, by id: what `search(resource_type, [(param, "T/id")])` finds,
        in one indexed query (the reads' Consent check asks it on every read)."""
        found = self.registry.params(resource_type).get(param)
        if found is None or found.kind != "reference":
            raise StoreError(f"{resource_type} has no reference search parameter {param!r}")
        rows = self._conn().execute(
            f"{CURRENT} JOIN ix_reference x ON x.rid = r.rid WHERE x.pid = ? AND x.tid = ? "
            "AND x.ttype = ? AND r.type = ? AND r.deleted = 0 GROUP BY r.rid ORDER BY r.id",
            (found.pid, target_id, target_type, resource_type),
        )
        return [stored(row) for row in rows]

    def change_for_inbound(self, inbound_event_id: str) -> list[tuple[str, str, int]]:
        """(type, id, version) of every change the inbound event produced, in log order."""
        return [
            (t, i, v)
            for t, i, v in self._conn().execute(
                "SELECT r.type, r.id, v.version FROM versions v JOIN resources r ON r.rid = v.rid "
                "WHERE v.inbound_event_id = ? ORDER BY v.rowid",
                (inbound_event_id,),
            )
        ]

    def rejection_for_inbound(self, inbound_event_id: str) -> Rejection | None:
        """The latest rejection of the inbound event, if carelog.rejected has one."""
        row = (
            self._conn()
            .execute(
                "SELECT original_event_id, event_id, stage, reason, operation_outcome, rejected_at "
                "FROM rejections WHERE original_event_id = ? ORDER BY rejected_at DESC, event_id LIMIT 1",
                (inbound_event_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return Rejection(row[0], row[1], row[2], row[3], row[4], datetime.fromisoformat(row[5]))

    def applied_offsets(self) -> dict[tuple[str, int], int]:
        """{(topic, partition): last offset applied}."""
        return {
            (t, p): o
            for t, p, o in self._conn().execute("SELECT topic, partition, offset FROM offsets")
        }

    def patient_compartment(
        self, patient_id: str, types: list[str] | None = None
    ) -> list[StoredResource]:
        """Patient/$everything: the patient and every live resource in its compartment.

        Membership follows the R4 patient CompartmentDefinition (which parameters of which
        types point at the patient). Ordered by type then id. `types` limits the types.
        """
        wanted = types or sorted({"Patient", *self.registry.compartment})
        out: list[StoredResource] = []
        searcher = Searcher(self._conn(), self.registry)
        for resource_type in wanted:
            if resource_type not in self.registry.compartment and resource_type != "Patient":
                continue
            offset: int | None = 0
            while offset is not None:
                page = searcher.search(
                    resource_type,
                    [("_count", "1000"), ("_offset", str(offset)), ("_total", "none")],
                    ("Patient", patient_id),
                )
                out.extend(page.matches)
                offset = page.next_offset
        return out

    def compartment_params(self) -> dict[str, tuple[str, ...]]:
        """{type: parameters linking it to the patient} from the R4 CompartmentDefinition."""
        return dict(self.registry.compartment)

    def supported_search_params(self) -> dict[str, list[tuple[str, str, str]]]:
        """{type: [(name, type, documentation)]} for the CapabilityStatement."""
        out: dict[str, list[tuple[str, str, str]]] = {}
        for resource_type, params in self.registry.by_type.items():
            listed = [(name, kind, doc) for name, (kind, doc) in BUILTIN.items()]
            listed += [(p.name, p.kind, p.description) for p in params.values()]
            out[resource_type] = sorted(listed)
        return out

    def resource_types(self) -> list[str]:
        return sorted(self.registry.by_type)
