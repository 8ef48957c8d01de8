"""The Delta Lake sink (projections/lake/, `carelog sink` and `carelog lake ...`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class LakeSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_LAKE_")

    uri: str | None = Field(
        None,
        description="Where the Delta tables go: a path or an object-storage URL "
        "(s3://, az://, gs://); default <var_dir>/lake.",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="deltalake storage options for uri (credentials, endpoint, region) "
        "as a JSON object.",
    )
    views_dir: Path | None = Field(
        None, description="Folder of extra SQL-on-FHIR ViewDefinitions (*.json), one table each."
    )
    batch_max_events: int = Field(
        20_000, description="A sink micro-batch is written after this many changes..."
    )
    batch_max_seconds: float = Field(1.0, description="...or after this many seconds...")
    batch_linger_ms: int = Field(
        1000,
        description="...or, once no more has arrived for this many ms, what has. A commit "
        "costs about the same whatever its size: at 1,000 (a batch a second) the sink used half "
        "the CPU it did at 200 under the worker's bursts of changes (docs/figures.md).",
        ge=0,
    )
    group_id: str = Field("carelog-lake-sink", description="Consumer group of `carelog sink`.")
    instance_id: str | None = Field(
        None,
        description="A static member id of `carelog sink` in its group (Kafka's "
        "group.instance.id), unique among the live sinks: restarted with it, the sink takes its "
        "partitions back at once instead of after its 10 s session. `carelog run` sets it.",
    )
    deidentify_secret: SecretStr | None = Field(
        None, description="When set, also write de-identified tables, ids hashed with this key."
    )
    compact_every_commits: int = Field(
        50,
        description="`carelog sink` compacts a table's small files (into files of up to "
        "compact_target_bytes) after this many of its commits: each commit costs in "
        "proportion to the files of the table (17 ms at 100, 57 ms at 400). 0: never.",
        ge=0,
    )
    compact_target_bytes: int = Field(
        8 << 20,
        description="Files the sink's compaction writes are at most this big; bigger files "
        "are left as they are, so a compaction rewrites only the recent small ones.",
        gt=0,
    )
    vacuum_retention_hours: int = Field(
        168, description="`carelog lake optimize` removes unreferenced files older than this."
    )
    nice: int = Field(
        5,
        ge=0,
        le=19,
        description="How much `carelog sink` yields the cores to the other processes when "
        "they are short (its niceness, 0-19): it writes once a second whatever comes, while "
        "the worker and the store projection are on the path a FHIR write waits for.",
    )
    metrics_port: int = Field(
        9104,
        validation_alias="CARELOG_SINK_METRICS_PORT",
        description="`carelog sink` metrics port (0: off).",
    )
