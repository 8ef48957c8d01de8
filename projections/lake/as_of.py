"""The lake's tables as of a position on carelog.fhir.changes: `carelog lake as-of`.

Every sink commit carries the log positions its table reflects (projections/lake/offsets.py),
and these only grow from version to version, so the version of a table at a position p is
the last one whose positions are at most p (a binary search over versions). Positions are
batch boundaries: the sink commits bronze and every silver table a batch changes at the same
positions, so the bronze table's version at p names the boundary b <= p, and each table's
version at b holds exactly the changes up to b. Each commit also records where its data
starts, so that claim is checked, not assumed: a table is `exact` when its next version's
data starts after b. `complete` says whether b is the position asked for, i.e. whether the
bronze table holds no change between b and p.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deltalake import DeltaTable

from projections.lake.errors import LakeError
from projections.lake.maintenance import positions as current_positions
from projections.lake.offsets import data_from, table_positions
from projections.lake.tables import BRONZE, Lake
from streams.topics import FHIR_CHANGES

Position = dict[int, int]  # partition -> last offset included


class AsOfError(LakeError):
    """The lake cannot show the tables at that position (no such table, not kept any more)."""


@dataclass(frozen=True)
class TableAsOf:
    name: str
    version: int
    positions: Position  # what that version reflects (at most the boundary)
    exact: bool  # it holds exactly the table's changes up to the boundary


@dataclass(frozen=True)
class AsOf:
    requested: Position | None  # None: the latest position the tables hold
    position: Position  # the batch boundary used: the bronze table's at its version
    complete: bool  # no change lies between `position` and `requested`
    tables: list[TableAsOf] = field(default_factory=list)

    @property
    def versions(self) -> dict[str, int]:
        return {t.name: t.version for t in self.tables}


def parse_position(text: str) -> Position | None:
    """`0:120,1:98` -> {0: 120, 1: 98}; `latest` -> None."""
    if text.strip() == "latest":
        return None
    out: Position = {}
    for part in text.split(","):
        partition, sep, offset = part.strip().partition(":")
        if not sep or not partition.strip().isdigit() or not offset.strip().lstrip("-").isdigit():
            raise AsOfError(
                f"expected a position as partition:offset,... (e.g. 0:120,1:98) or latest, "
                f"got {text!r}"
            )
        out[int(partition)] = int(offset)
    return out


def format_position(position: Position) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(position.items())) or "nothing"


def resolve(
    position: Position | None,
    lake: Lake,
    names: list[str],
    topic: str = FHIR_CHANGES,
) -> AsOf:
    """The version of each of `names` at `position` (bronze first decides the boundary)."""
    bronze = _open(lake, BRONZE)
    partitions = sorted(current_positions(bronze, topic))
    requested = position
    wanted = (
        dict(requested)
        if requested is not None
        else _plain(table_positions(bronze, topic, partitions))
    )
    found = _version_at(lake, BRONZE, bronze, wanted, topic)
    boundary, complete = found.positions, found.exact  # exact at `wanted`: no change between
    at_bronze = TableAsOf(
        BRONZE,
        found.version,
        boundary,
        complete or _starts_after(lake, BRONZE, bronze, found.version, boundary, topic),
    )
    tables = [
        at_bronze if name == BRONZE else _version_at(lake, name, _open(lake, name), boundary, topic)
        for name in names
    ]
    return AsOf(requested, boundary, complete, tables)


def versions_at(
    position: Position | None,
    lake: Lake | None = None,
    names: list[str] | None = None,
    topic: str = FHIR_CHANGES,
) -> dict[str, int]:
    """{table: the Delta version holding exactly the changes up to the position's boundary}.

    `position` is {partition: last offset} or None for the latest; `names` defaults to every
    table in the lake. Raises AsOfError where the tables do not hold that position exactly.
    """
    lake = lake or _default_lake()
    found = resolve(position, lake, names or lake.table_names(), topic)
    if not found.complete:
        raise AsOfError(
            f"no batch of the sink ended at {format_position(position or {})}: the tables hold "
            f"the changes up to {format_position(found.position)}, the last batch end before it"
        )
    inexact = [t.name for t in found.tables if not t.exact]
    if inexact:
        raise AsOfError(
            f"{', '.join(inexact)} cannot be shown exactly at {format_position(found.position)} "
            "(filled from the log after the other tables, past that position in one commit)"
        )
    return found.versions


def open_as_of(
    table: str, position: Position | None, lake: Lake | None = None, topic: str = FHIR_CHANGES
) -> DeltaTable:
    """The table ("silver/patient", "bronze/resource_changes") as of `position`."""
    lake = lake or _default_lake()
    version = versions_at(position, lake, [table], topic)[table]
    return DeltaTable(
        lake.uri_of(table), version=version, storage_options=lake.storage_options or None
    )


def _default_lake() -> Lake:
    from streams.settings import get_settings

    return Lake.from_settings(get_settings())


def _open(lake: Lake, name: str) -> DeltaTable:
    table = lake.open(name)
    if table is None:
        raise AsOfError(f"no table {name} under {lake.uri}")
    return table


def _plain(positions: dict[tuple[str, int], int]) -> Position:
    return {p: off for (_, p), off in positions.items()}


def _load(lake: Lake, name: str, version: int) -> DeltaTable:
    try:
        return DeltaTable(
            lake.uri_of(name), version=version, storage_options=lake.storage_options or None
        )
    except Exception as exc:  # deltalake raises several kinds for a version it no longer has
        raise AsOfError(f"{name} no longer keeps version {version}: {exc}") from exc


def _version_at(
    lake: Lake, name: str, table: DeltaTable, position: Position, topic: str
) -> TableAsOf:
    """The last version of the table whose positions are all at most `position`."""
    partitions = sorted(current_positions(table, topic))

    def at(version: int) -> Position:
        return _plain(table_positions(_load(lake, name, version), topic, partitions))

    def within(held: Position) -> bool:
        return all(off <= position.get(p, -1) for p, off in held.items())

    low, high = _earliest(lake, name, table.version()), table.version()
    if not within(at(low)):
        raise AsOfError(
            f"{name} keeps nothing as early as {format_position(position)}: its oldest version "
            f"kept, {low}, reflects {format_position(at(low))}"
        )
    while low < high:  # invariant: `low` is within, everything after `high` is not
        middle = (low + high + 1) // 2
        if within(at(middle)):
            low = middle
        else:
            high = middle - 1
    exact = _starts_after(lake, name, table, low, position, topic)
    return TableAsOf(name, low, at(low), exact)


def _earliest(lake: Lake, name: str, current: int) -> int:
    """The oldest version whose log is still kept (Delta drops old log files after a while)."""
    try:
        _load(lake, name, 0)
        return 0
    except AsOfError:
        pass
    low, high = 1, current  # versions from some checkpoint on load; the current one does
    while low < high:
        middle = (low + high) // 2
        try:
            _load(lake, name, middle)
            high = middle
        except AsOfError:
            low = middle + 1
    return low


def _starts_after(
    lake: Lake, name: str, table: DeltaTable, version: int, position: Position, topic: str
) -> bool:
    """Whether the data of the version after `version` starts after `position` (or none came)."""
    if version >= table.version():
        return True
    partitions = sorted(current_positions(table, topic))
    starts = _plain(data_from(_load(lake, name, version + 1), topic, partitions))
    if not starts:
        return False  # written before commits recorded where their data starts: unknown
    return all(off > position.get(p, -1) for p, off in starts.items())
