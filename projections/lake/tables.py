"""Where the lake's tables live and how to open them, on a local path or object storage."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from streams.settings import Settings

BRONZE = "bronze/resource_changes"


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
        self, name: str, schema: pa.Schema, partition_by: list[str] | None = None
    ) -> DeltaTable:
        """Open a table, creating it empty, or adding the columns `schema` has and it lacks."""
        table = self.open(name)
        if table is None:
            return DeltaTable.create(
                self.uri_of(name),
                schema,
                mode="ignore",
                partition_by=partition_by,
                storage_options=self.storage_options or None,
                name=name.rsplit("/", 1)[-1],
            )
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
