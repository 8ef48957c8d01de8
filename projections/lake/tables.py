"""Where the lake's tables live and how to open them, on a local path or object storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from streams.settings import Settings

BRONZE = "bronze/resource_changes"
# The columns whose min/max values a table's log records per data file (Delta's file
# statistics). A log is never rewritten, so an erasure could not take a value out of it:
# only columns that are in clear on carelog's own log (ids, versions, times, positions) get
# statistics, never resource content.
STATS_COLUMNS = "delta.dataSkippingStatsColumns"
# Set on a table made before that restriction: the versions below it (and any checkpoint)
# may hold statistics of content columns, which an erasure scrubs (projections/lake/purge.py).
CONTENT_STATS_BELOW = "carelog.contentStatisticsBelowVersion"


@dataclass(frozen=True)
class Lake:
    """The root of the lake: a path or URL, with the storage options to reach it."""

    uri: str
    storage_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Lake:
        uri = settings.lake.uri or str(settings.var_dir / "lake")
        if "://" not in uri:
            uri = str(Path(uri).resolve())  # deltalake wants absolute local paths
        return cls(uri.rstrip("/"), dict(settings.lake.storage_options))

    def uri_of(self, name: str) -> str:
        """The URI of a table, by its name under the root ("bronze/resource_changes")."""
        return f"{self.uri}/{name}"

    def open(self, name: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri_of(name), storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None

    def ensure(
        self,
        name: str,
        schema: pa.Schema,
        stats_columns: Sequence[str],
        partition_by: list[str] | None = None,
    ) -> DeltaTable:
        """Open a table, creating it empty, or adding the columns `schema` has and it lacks;
        file statistics of `stats_columns` only (see STATS_COLUMNS)."""
        config = {STATS_COLUMNS: ",".join(stats_columns)}
        table = self.open(name)
        if table is None:
            return DeltaTable.create(
                self.uri_of(name),
                schema,
                mode="ignore",
                partition_by=partition_by,
                storage_options=self.storage_options or None,
                name=name.rsplit("/", 1)[-1],
                configuration=config,
            )
        current = table.metadata().configuration
        if current.get(STATS_COLUMNS) != config[STATS_COLUMNS]:
            if STATS_COLUMNS not in current and CONTENT_STATS_BELOW not in current:
                config[CONTENT_STATS_BELOW] = str(table.version() + 1)  # this commit's version
            table.alter.set_table_properties(config, raise_if_not_exists=False)
            table.update_incremental()
        current = pa.schema(table.schema())
        missing = [f for f in schema if f.name not in current.names]
        if missing:
            # Schema evolution: an empty append that merges the new columns in (nullable).
            write_deltalake(
                table,
                schema.empty_table(),
                mode="append",
                schema_mode="merge",
                storage_options=self.storage_options or None,
            )
            table.update_incremental()
        return table

    def table_names(self) -> list[str]:
        """Every table under the root (local lakes only list by walking the folders)."""
        names = []
        for group in ("bronze", "silver", "deidentified/silver", "deidentified/bronze"):
            root = self.uri_of(group)
            if "://" in root and not root.startswith("file://"):
                continue
            folder = Path(root.removeprefix("file://"))
            if folder.is_dir():
                names += [
                    f"{group}/{p.name}"
                    for p in sorted(folder.iterdir())
                    if (p / "_delta_log").is_dir()
                ]
        return names
