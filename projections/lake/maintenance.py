"""Keeping the lake healthy and saying what is in it: `carelog lake optimize|tables`.

Micro-batches leave many small files; compaction rewrites them into large ones (a commit
that changes no data and carries no positions) and vacuum deletes the files no version
within the retention period still references. Time travel reaches back as far as vacuum
allows, so the retention period is also how far back readers can go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable

from projections.lake.offsets import app_id
from projections.lake.tables import Lake

MAX_PARTITIONS_PROBED = 256


@dataclass(frozen=True)
class TableInfo:
    name: str
    version: int
    rows: int
    files: int
    columns: list[tuple[str, str]]
    partition_by: list[str]
    positions: dict[int, int]  # partition -> last offset the table reflects


def optimize(
    lake: Lake, names: list[str], retention_hours: int, target_size: int | None = None
) -> dict[str, dict[str, Any]]:
    """Compact, vacuum and checkpoint each table; returns what was done per table."""
    done: dict[str, dict[str, Any]] = {}
    for name in names:
        table = lake.open(name)
        if table is None:
            continue
        compacted = table.optimize.compact(target_size=target_size)
        removed = table.vacuum(
            retention_hours=retention_hours,
            dry_run=False,
            # deltalake refuses less than a week unless told; the setting is the operator's choice.
            enforce_retention_duration=False,
        )
        table.create_checkpoint()
        done[name] = {
            "files_added": compacted.get("numFilesAdded", 0),
            "files_removed": compacted.get("numFilesRemoved", 0),
            "files_vacuumed": len(removed),
            "version": table.version(),
        }
    return done


def positions(table: DeltaTable, topic: str) -> dict[int, int]:
    """The last offset of each partition of `topic` that the table reflects."""
    # Probing the partitions costs about 1 ms each (deltalake looks up one application
    # transaction at a time): a quarter of a second a table. A version never changes, so what
    # it says is kept (`carelog lake as-of` asks the same versions again and again); the
    # table's id tells a table made again at the same place from the one before it.
    key = (table.table_uri, str(table.metadata().id), table.version(), topic)  # typed int
    found = _positions_seen.get(key)
    if found is None:
        found = {}
        for p in range(MAX_PARTITIONS_PROBED):
            version = table.transaction_version(app_id(topic, p))
            if version is not None:
                found[p] = int(version)
        if len(_positions_seen) >= POSITIONS_KEPT:
            _positions_seen.pop(next(iter(_positions_seen)))
        _positions_seen[key] = found
    return dict(found)


POSITIONS_KEPT = 1024
_positions_seen: dict[tuple[str, str, int, str], dict[int, int]] = {}


def describe(lake: Lake, names: list[str], topic: str) -> list[TableInfo]:
    infos = []
    for name in names:
        table = lake.open(name)
        if table is None:
            continue
        schema = pa.schema(table.schema())
        files = table.file_uris()
        rows = table.to_pyarrow_dataset().count_rows() if files else 0
        infos.append(
            TableInfo(
                name=name,
                version=table.version(),
                rows=rows,
                files=len(files),
                columns=[(f.name, str(f.type)) for f in schema],
                partition_by=list(table.metadata().partition_columns),
                positions=positions(table, topic),
            )
        )
    return infos
