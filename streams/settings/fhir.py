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
    search_loop_budget_ms: float = Field(
        2.0,
        ge=0,
        description="CPU a FHIR search, history or $everything may take on the gateway's "
        "event loop before it is stopped and run again in a worker thread; 0 runs every one "
        "in a thread (more CPU per search, but a process may then use more than one core).",
    )
    audit_linger_ms: int = Field(
        50,
        ge=0,
        description="linger.ms of the gateway's own producer of AuditEvents: nobody waits "
        "for an audit record, so fewer, larger batches (half the producer CPU per read of "
        "5 ms, the ingest producer's); an AuditEvent is readable that much later.",
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
