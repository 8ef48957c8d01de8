"""Bulk Data export from the store: current resources as NDJSON files, from one snapshot.

Everything is read inside one SQLite read transaction, so an export reflects one state of
the store, at the log position its `offsets` table names then (returned with the files).
Rows are streamed with a cursor and the stored JSON is written as is (never parsed), so
memory stays flat whatever the size. A file holds at most `max_per_file` resources; a
type with more is split over several files.

Levels: system (every resource of the types asked), patient (the resources in any
patient's compartment, found through the compartment parameters' reference index, as
search does) and group (the compartments of the Group's Patient members only).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import orjson

from projections.fhir_store.definitions import Registry, load_registry
from projections.fhir_store.errors import StoreError
from projections.fhir_store.fhir_dates import from_us
from projections.fhir_store.schema import connect

Level = Literal["system", "patient", "group"]
_FETCH = 2000  # rows per fetchmany: large enough to amortise the Python loop


class ExportCancelled(Exception):
    """The job was deleted while it ran."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    level: Level
    types: tuple[str, ...]  # empty: every type the level can hold (system: the store has)
    since_us: int | None = None  # only resources last updated at or after this
    group: str | None = None  # the Group id of a group-level export
    max_per_file: int = 100_000


@dataclass(frozen=True, slots=True)
class ExportedFile:
    resource_type: str
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class ExportResult:
    files: list[ExportedFile]
    position: dict[str, int]  # "topic:partition" -> last offset applied in the snapshot
    transaction_time: str  # the latest lastUpdated in the snapshot (ISO instant)


def compartment_types(registry: Registry) -> tuple[str, ...]:
    """The types a patient or group export can hold: Patient and the compartment's types."""
    return tuple(sorted({"Patient", *registry.compartment}))


def stored_types(conn: sqlite3.Connection) -> list[str]:
    """The types the store holds rows of: a skip-scan of the (type, id) index, one probe per
    type rather than a pass over every row."""
    return [t for (t,) in conn.execute(
        "WITH RECURSIVE t(type) AS (SELECT min(type) FROM resources UNION ALL "
        "SELECT (SELECT min(type) FROM resources WHERE type > t.type) FROM t "
        "WHERE t.type IS NOT NULL) SELECT type FROM t WHERE type IS NOT NULL")]  # fmt: skip


def export(
    store_path: Path,
    request: ExportRequest,
    out_dir: Path,
    progress: Callable[[int], bool] = lambda written: True,
) -> ExportResult:
    """Write the NDJSON files of `request` into `out_dir`.

    `progress(resources written so far)` is called every few thousand rows; it returns
    False to stop (ExportCancelled). Raises StoreError for a group that is not there.
    """
    registry = load_registry()
    conn = connect(store_path, readonly=True)
    # One pass in key order: a large page cache buys nothing here, and its fill would make
    # the process's memory grow with the store (up to the 64 MiB readers get).
    conn.execute("PRAGMA cache_size = -8192")
    try:
        conn.execute("BEGIN")  # one read snapshot for everything below
        position = {f"{t}:{p}": o for t, p, o in conn.execute(
            "SELECT topic, partition, offset FROM offsets ORDER BY topic, partition")}  # fmt: skip
        newest = conn.execute("SELECT max(lu) FROM versions").fetchone()[0]
        members = _group_members(conn, request.group) if request.level == "group" else None
        files: list[ExportedFile] = []
        written = 0
        if request.types:
            types: list[str] | tuple[str, ...] = request.types
        elif request.level == "system":
            types = stored_types(conn)  # in the snapshot: a type new since kick-off is kept
        else:
            types = compartment_types(registry)
        for resource_type in types:
            rows = _rows(conn, registry, request, resource_type, members)
            counted = functools.partial(_offset_progress, progress, written)
            for exported in _write_type(
                rows, resource_type, out_dir, request.max_per_file, counted
            ):
                files.append(exported)
                written += exported.count
            if not progress(written):
                raise ExportCancelled
        conn.execute("COMMIT")
    finally:
        conn.close()
    moment = from_us(newest) if newest is not None else None
    stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else ""
    return ExportResult(files, position, stamp)


def _offset_progress(progress: Callable[[int], bool], before: int, written: int) -> bool:
    """Progress of one type's rows on top of the `before` of the types written earlier."""
    return progress(before + written)


def _group_members(conn: sqlite3.Connection, group_id: str | None) -> list[str]:
    """The ids of the Group's Patient members (other members have no compartment)."""
    row = conn.execute(
        "SELECT v.json, r.deleted FROM resources r JOIN versions v ON v.rid = r.rid AND "
        "v.version = r.version WHERE r.type = 'Group' AND r.id = ?",
        (group_id,),
    ).fetchone()
    if row is None or row[1]:
        raise StoreError(f"Group/{group_id} is not known")
    members = []
    for member in orjson.loads(row[0]).get("member") or []:
        reference = ((member or {}).get("entity") or {}).get("reference")
        if type(reference) is str and reference.startswith("Patient/"):
            members.append(reference.removeprefix("Patient/"))
    return members


def _rows(
    conn: sqlite3.Connection,
    registry: Registry,
    request: ExportRequest,
    resource_type: str,
    members: list[str] | None,
) -> Iterator[list[str]]:
    """Batches of the stored JSON of the live resources of one type that the level keeps."""
    sql = (
        "SELECT v.json FROM resources r JOIN versions v ON v.rid = r.rid AND "
        "v.version = r.version WHERE r.type = ? AND r.deleted = 0"
    )
    args: list[object] = [resource_type]
    if request.since_us is not None:
        sql += " AND r.lu >= ?"
        args.append(request.since_us)
    if request.level != "system":
        if resource_type == "Patient":
            if members is not None:
                sql += " AND r.id IN (SELECT value FROM json_each(?))"
                args.append(orjson.dumps(members).decode())
        else:
            params = registry.params(resource_type)
            pids = [params[n].pid for n in registry.compartment.get(resource_type, ())
                    if n in params and params[n].kind == "reference"]  # fmt: skip
            if not pids:
                return
            # The reference index holds the current version's references: the same rows
            # compartment search reads.
            sql += (
                " AND EXISTS (SELECT 1 FROM ix_reference x WHERE x.rid = r.rid AND x.pid IN "
                f"({', '.join('?' * len(pids))}) AND x.ttype = 'Patient'"
            )
            args += pids
            if members is not None:
                sql += " AND x.tid IN (SELECT value FROM json_each(?))"
                args.append(orjson.dumps(members).decode())
            sql += ")"
    cursor = conn.execute(sql + " ORDER BY r.id", args)
    while batch := cursor.fetchmany(_FETCH):
        yield [row[0] for row in batch]


def _write_type(
    batches: Iterator[list[str]],
    resource_type: str,
    out_dir: Path,
    max_per_file: int,
    progress: Callable[[int], bool],
) -> Iterator[ExportedFile]:
    """Write the batches into `{type}-{n}.ndjson` files of at most `max_per_file` lines."""
    handle: IO[str] | None = None
    name, count, number, done = "", 0, 0, 0
    try:
        for batch in batches:
            start = 0
            while start < len(batch):
                if handle is None:
                    number += 1
                    name, count = f"{resource_type}-{number}.ndjson", 0
                    handle = open(out_dir / name, "w", encoding="utf-8")  # noqa: SIM115
                part = batch[start : start + max_per_file - count]
                text = "\n".join(part)
                if text.count("\n") != len(part) - 1:  # one of them spans several lines
                    text = "\n".join(_one_line(j) for j in part)
                handle.write(text)
                handle.write("\n")
                count += len(part)
                start += len(part)
                if count >= max_per_file:
                    handle.close()
                    handle = None
                    yield ExportedFile(resource_type, name, count)
                    done, count = done + count, 0
            if not progress(done + count):
                raise ExportCancelled
        if handle is not None:
            handle.close()
            handle = None
            yield ExportedFile(resource_type, name, count)
    finally:
        if handle is not None:
            handle.close()


def _one_line(text: str) -> str:
    """JSON as received may be pretty-printed: its line breaks are whitespace between tokens
    (a JSON string cannot hold a raw one), so dropping them keeps the same JSON."""
    return text.replace("\r", "").replace("\n", "") if "\n" in text or "\r" in text else text
