"""Kafka positions kept in the Delta tables themselves, as application transactions.

Every commit to a table carries one Delta transaction identifier per topic partition it has
read up to: app id "carelog.lake:<topic>:<partition>", version = the last offset applied.
The data and the position commit atomically, so a table says exactly which events it holds;
Kafka's committed offsets are only a hint. On start the sink seeks each partition to just
after the lowest position any table reports, and every table skips what it already has.

Each commit also records, per partition, where its data starts ("carelog.lake.from:<topic>:
<partition>": the lowest offset it wrote, or its position + 1 when it wrote nothing of that
partition). A version then says by itself whether the table held exactly the changes up to a
position p: its own positions are at most p and the next version's data starts after p, or
after that version's own position there (it wrote nothing of the partition)
(projections/lake/as_of.py). A silver merge that changes no row commits nothing in Delta, so
the sink then records its positions in an empty commit (projections/lake/silver.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from deltalake import CommitProperties, DeltaTable, Transaction

Positions = dict[tuple[str, int], int]  # (topic, partition) -> last offset applied


def app_id(topic: str, partition: int) -> str:
    return f"carelog.lake:{topic}:{partition}"


def data_from_app_id(topic: str, partition: int) -> str:
    return f"carelog.lake.from:{topic}:{partition}"


def table_positions(table: DeltaTable, topic: str, partitions: Iterable[int]) -> Positions:
    """The last offset of each partition the table holds (absent: nothing from it yet)."""
    return _transaction_versions(table, topic, partitions, app_id)


def data_from(table: DeltaTable, topic: str, partitions: Iterable[int]) -> Positions:
    """Where the data of the table's last commit starts, per partition (see the module doc)."""
    return _transaction_versions(table, topic, partitions, data_from_app_id)


def _transaction_versions(
    table: DeltaTable,
    topic: str,
    partitions: Iterable[int],
    app_id_of: Callable[[str, int], str],
) -> Positions:
    out: Positions = {}
    for p in partitions:
        version = table.transaction_version(app_id_of(topic, p))
        if version is not None:
            out[(topic, p)] = int(version)
    return out


def commit_properties(
    positions: Mapping[tuple[str, int], int],
    starts: Mapping[tuple[str, int], int] | None = None,
    **metadata: str,
) -> CommitProperties:
    """A commit reaching `positions`, whose data starts at `starts` (lowest offset written)."""
    starts = starts or {}
    ordered = sorted(positions.items())
    return CommitProperties(
        app_transactions=[Transaction(app_id(t, p), off) for (t, p), off in ordered]
        + [
            Transaction(data_from_app_id(t, p), starts.get((t, p), off + 1))
            for (t, p), off in ordered
        ],
        custom_metadata={"carelog.writer": "carelog sink", **metadata},
    )


def resume_offsets(
    per_table: Iterable[Positions], topic: str, partitions: Iterable[int]
) -> dict[int, int | None]:
    """Where to start reading each partition: after the lowest position of all tables.

    None means from the beginning (some table has nothing of that partition yet).
    """
    tables = list(per_table)
    out: dict[int, int | None] = {}
    for p in partitions:
        known = [t.get((topic, p)) for t in tables]
        out[p] = (
            None
            if not tables or any(k is None for k in known)
            else min(k for k in known if k is not None) + 1
        )
    return out
