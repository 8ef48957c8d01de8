"""FHIR REST over the store (api/fhir/): writes, audit of reads, and bulk $export."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class FhirApiSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_FHIR_")

    write_wait_seconds: float = Field(
        10.0,
        description="A FHIR write waits this long for the store to show its change (or its "
        "rejection) before it is answered 202; 0 answers 202 at once.",
    )
    write_unchanged_seconds: float = Field(
        6.0,
        description="A write the store already reflects (same content, or deleting what is "
        "gone) produces no change on the log; it is answered 200 with the current version "
        "after this long without a change or a rejection.",
    )
    audit_reads: bool = Field(
        True,
        description="Append an AuditEvent to carelog.audit (straight from the gateway, not "
        "through the processors) for every read or search of FHIR data.",
    )


class BulkExportSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_BULK_EXPORT_")

    dir: Path | None = Field(
        None,
        description="Where FHIR $export jobs write their files; default <var_dir>/bulk-export.",
    )
    expire_seconds: float = Field(
        86400.0, description="A finished $export job (and its files) is deleted after this long."
    )
    file_max_resources: int = Field(
        100_000, description="An $export NDJSON file holds at most this many resources."
    )
