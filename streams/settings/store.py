"""The FHIR store projection (projections/fhir_store/, `carelog projection`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class StoreSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_FHIR_STORE_")

    path: Path | None = Field(
        None, description="SQLite file of the FHIR store; default <var_dir>/fhir-store.sqlite."
    )
    batch_max: int = Field(
        5000, description="The projection applies up to this many events per transaction..."
    )
    batch_ms: int = Field(
        200, description="...or what arrived within this many ms of a batch's first event..."
    )
    batch_linger_ms: int = Field(
        50,
        description="...or, under load, once no more has arrived for this many ms, what has "
        "(a worker's commit makes its changes readable in bursts, gathered here into one "
        "batch). A batch costs about the same whatever its size (a transaction, its pages "
        "written again): at 500 msg/s, 50 took 0.7x the projection's CPU of 0. A light flow "
        "(fewer than BUSY_CHANGES_PER_SECOND in projections/fhir_store/runner.py) is applied "
        "as soon as it is fetched, whatever this says. 0: always at once.",
        ge=0,
    )
    rebuild_index_processes: int = Field(
        1,
        description="`carelog projection rebuild`: processes extracting and writing the index "
        "rows beside the one reading the log (0: that one does it all).",
    )
    metrics_port: int = Field(
        9103,
        validation_alias="CARELOG_PROJECTION_METRICS_PORT",
        description="`carelog projection` metrics port (0: off).",
    )
