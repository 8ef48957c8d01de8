"""Silver tables: the current state of each resource, flattened by a ViewDefinition.

A view can give a resource several rows (forEach), so the current state is kept by one
MERGE per batch whose source holds, for every resource the batch updated or deleted, a marker
row (which deletes whatever rows the table has for it), and the rows of every new version
(inserted). A delete is a marker alone. Versions only grow and each table skips the changes it
already holds (projections/lake/offsets.py), so a first version (version 1, the bulk of any
load) cannot meet rows of the same resource: it gets no marker, and a batch of first versions
alone is simply appended, which costs no scan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, write_deltalake

from projections.lake.changes import Change, latest_per_resource
from projections.lake.errors import ViewEvaluationError
from projections.lake.views import SYSTEM_FIELDS, View, to_arrow

log = logging.getLogger(__name__)

Resource = dict[str, Any]
MARKER = "_marker"


@dataclass(frozen=True)
class Flattened:
    """What a batch does to one silver table."""

    rows: pa.Table  # rows of the new versions
    changed_ids: list[str]  # every resource the batch touched
    replaced_ids: list[str]  # ... of which those that can have rows already (their rows go)
    replaced_versions: list[int]
    failures: int

    @property
    def needs_merge(self) -> bool:
        """False when no touched resource can have rows already: a plain append does."""
        return bool(self.replaced_ids)


def flatten(
    view: View,
    changes: list[Change],
    transform: Callable[[Resource], Resource] | None = None,
    key: Callable[[str], str] = str,
) -> Flattened:
    """The silver rows of a batch's changes to the view's resource type.

    `transform` rewrites each resource first and `key` each resource id (de-identification).
    """
    rows: list[dict[str, Any]] = []
    system: dict[str, list[Any]] = {f.name: [] for f in SYSTEM_FIELDS}
    ids: list[str] = []
    replaced_ids: list[str] = []
    replaced_versions: list[int] = []
    failures = 0
    for change in latest_per_resource([c for c in changes if c.resource_type == view.resource]):
        rid = key(change.resource_id)
        ids.append(rid)
        version = change.version
        if version != 1 or change.is_delete:
            replaced_ids.append(rid)
            replaced_versions.append(version)
        resource = change.resource()
        if change.is_delete or resource is None:
            continue
        if transform is not None:
            resource = transform(resource)
        try:
            new = view.rows(resource)
        except ViewEvaluationError as exc:
            failures += 1
            log.warning(
                "view %s: %s/%s v%d gives no rows: %s",
                view.name,
                change.resource_type,
                change.resource_id,
                version,
                exc,
            )
            continue
        rows += new
        system["_resource_id"] += [rid] * len(new)
        system["_version"] += [version] * len(new)
        # De-identified tables keep no record time: it would date the patient's visits.
        recorded = change.recorded_at_us if transform is None else None  # µs since the epoch
        system["_last_updated"] += [recorded] * len(new)
    return Flattened(to_arrow(view, rows, system), ids, replaced_ids, replaced_versions, failures)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write(
    table: DeltaTable,
    schema: pa.Schema,
    flat: Flattened,
    commit: CommitProperties,
    storage_options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Apply one batch to a table of `schema` (a view's, with the system fields) in one
    commit (append or merge); returns its metrics."""
    if not flat.needs_merge:
        write_deltalake(
            table,
            flat.rows,
            mode="append",
            commit_properties=commit,
            storage_options=storage_options,
        )
        return {"num_target_rows_inserted": flat.rows.num_rows}
    markers = pa.table(
        {
            **{f.name: pa.nulls(len(flat.replaced_ids), f.type) for f in schema},
            "_resource_id": pa.array(flat.replaced_ids, pa.string()),
            "_version": pa.array(flat.replaced_versions, pa.int64()),
        },
        schema=schema,
    )
    source = pa.concat_tables([markers, flat.rows]).append_column(
        MARKER,
        pa.array([True] * markers.num_rows + [False] * flat.rows.num_rows, pa.bool_()),
    )
    columns = {_quote(n): f"s.{_quote(n)}" for n in schema.names}
    metrics = dict(
        table.merge(
            source,
            predicate=f"t._resource_id = s._resource_id AND s.{MARKER}",
            source_alias="s",
            target_alias="t",
            commit_properties=commit,
        )
        .when_matched_delete()
        .when_not_matched_insert(columns, predicate=f"NOT s.{MARKER}")
        .execute()
    )
    if not metrics["num_target_files_added"] and not metrics["num_target_files_removed"]:
        # A merge that changes no row (a new version whose view gives no rows, a delete of a
        # resource without rows) commits nothing, positions included: record them anyway, or
        # the table would seem behind them (as-of could not show it exact; a restart re-reads).
        write_deltalake(
            table,
            flat.rows.slice(0, 0),
            mode="append",
            commit_properties=commit,
            storage_options=storage_options,
        )
    return metrics
