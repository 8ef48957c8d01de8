"""Removing an erased patient's resources from every Delta table for good
(projections/lake/purge.py: a delete, then the files it dropped are removed from storage).

Used by `carelog erase` (api/erasure/erase.py) once the data keys are shredded, so the sink
that folds the log can no longer bring them back (it skips erased events).
"""

from __future__ import annotations

from projections.lake.purge import purge_resources
from projections.lake.sink import LakeSink
from streams.settings import Settings


def erase_from_lake(
    settings: Settings, resources: set[tuple[str, str]]
) -> tuple[dict[str, int], int]:
    """Delete the resources' rows from bronze and every silver table (plain and
    de-identified), then remove the files that held them: (rows per table, files removed).
    The tables' versions before the delete can no longer be read (time travel to them)."""
    if not (settings.var_dir / "lake").exists() and settings.lake.uri is None:
        return {}, 0
    sink = LakeSink(settings)
    return purge_resources(sink.targets, resources, sink.deidentifier)
