"""The lake's tables as of a position on carelog.fhir.changes: `carelog lake as-of`.

Every sink commit carries the log positions its table reflects (projections/lake/offsets.py),
and these only grow from version to version, so the version of a table at a position p is
the last one whose positions are at most p (a binary search over versions). Positions are
batch boundaries: the sink commits bronze and every silver table a batch changes at the same
positions, so the bronze table's version at p names the boundary b <= p, and each table's
version at b holds exactly the changes up to b. Each commit also records where its data
starts, so that claim is checked, not assumed: a table is `exact` when its next version's
data starts after b (or, in a partition that version did not take further, is empty). A table still at its latest version short of b (a table commits only
when a batch has changes for it, or every 10 s) is exact when bronze holds no change of its
resource type in between; one whose commit has not landed yet (or that a crash left behind
until the sink restarts) is not. `complete` says whether bronze holds no change between b
and p, so the tables show p itself; past bronze's latest commit it is unknown, so false.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pyarrow.compute as pc
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
    resources: Mapping[str, str] | None = None,
) -> AsOf:
    """The version of each of `names` at `position` (bronze first decides the boundary).

    `resources` maps each silver table to its view's resource type (default: the views in
    the settings); it tells whether a table still at its latest version, behind the boundary,
    has changes of its own in between (a commit not landed yet) or none (nothing came).
    """
    resources = resources if resources is not None else _view_resources()
    bronze = _open(lake, BRONZE)
    partitions = sorted(current_positions(bronze, topic))
    requested = position
    wanted = (
        dict(requested)
        if requested is not None
        else _plain(table_positions(bronze, topic, partitions))
    )
    # Past bronze's latest commit the log may hold changes the sink has not written yet.
    found = _version_at(lake, BRONZE, bronze, wanted, topic, lambda held, upto: True)
    boundary, complete = found.positions, found.exact  # exact at `wanted`: no change between
    at_bronze = TableAsOf(BRONZE, found.version, boundary, True)  # at its own position

    def pending_of(name: str) -> Callable[[Position, Position], bool]:
        resource = resources.get(name)
        if resource is None:
            return lambda held, upto: True  # not a view's table: cannot tell
        return lambda held, upto: _bronze_has(lake, found.version, resource, held, upto, topic)

    tables = [
        at_bronze
        if name == BRONZE
        else _version_at(lake, name, _open(lake, name), boundary, topic, pending_of(name))
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
            f"the changes up to {format_position(found.position)}, the last batch end before it "
            "(or the sink has not reached the position yet)"
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
    lake: Lake,
    name: str,
    table: DeltaTable,
    position: Position,
    topic: str,
    pending: Callable[[Position, Position], bool],
) -> TableAsOf:
    """The last version of the table whose positions are all at most `position`.

    `pending(held, position)` says whether changes of the table's own may lie between what
    its latest version holds and `position` (asked only of the latest version).
    """
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
    held = at(low)
    if low < table.version():
        exact = _starts_after(lake, name, table, low, position, topic)
    elif all(held.get(p, -1) >= off for p, off in position.items()):
        exact = True  # the latest version reached the position itself
    else:
        exact = not pending(held, position)
    return TableAsOf(name, low, held, exact)


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


def _bronze_has(
    lake: Lake, version: int, resource: str, after: Position, upto: Position, topic: str
) -> bool:
    """Whether bronze at `version` holds changes to `resource` after `after`, up to `upto`."""
    rows = _load(lake, BRONZE, version).to_pyarrow_dataset()
    between = [
        (pc.field("kafka_partition") == p)
        & (pc.field("kafka_offset") > after.get(p, -1))
        & (pc.field("kafka_offset") <= off)
        for p, off in upto.items()
        if off > after.get(p, -1)
    ]
    if not between:
        return False
    wanted = (pc.field("resource_type") == resource) & (pc.field("kafka_topic") == topic)
    return bool(rows.count_rows(filter=wanted & functools.reduce(operator.or_, between)) > 0)


def _view_resources() -> dict[str, str]:
    """{silver table: its view's resource type}, for the views in the settings."""
    from projections.lake.views import SHIPPED_VIEWS, load_views
    from streams.settings import get_settings

    out: dict[str, str] = {}
    for view in load_views(SHIPPED_VIEWS, get_settings().lake.views_dir):
        out[f"silver/{view.name}"] = out[f"deidentified/silver/{view.name}"] = view.resource
    return out


def _starts_after(
    lake: Lake, name: str, table: DeltaTable, version: int, position: Position, topic: str
) -> bool:
    """Whether the data of the version after `version` (not the latest) starts after `position`."""
    partitions = sorted(current_positions(table, topic))
    after = _load(lake, name, version + 1)
    starts = _plain(data_from(after, topic, partitions))
    if not starts:
        return False  # written before commits recorded where their data starts: unknown
    reached = _plain(table_positions(after, topic, partitions))
    # A partition the next commit did not take further (a batch without changes of the
    # table's resource type there) records its start as its position + 1: nothing written.
    return all(off > position.get(p, -1) or off > reached.get(p, -1) for p, off in starts.items())
