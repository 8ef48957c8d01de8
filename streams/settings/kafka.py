"""The Kafka cluster carelog talks to, or the local broker it starts itself."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class KafkaSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_KAFKA_")

    cluster: str | None = Field(
        None,
        validation_alias="CARELOG_KAFKA_BOOTSTRAP",
        description="bootstrap.servers of an existing cluster; when set carelog starts no broker.",
    )
    port: int = Field(9092, description="Port of the local broker carelog starts itself.")
    controller_port: int = Field(9093, description="KRaft controller port of that broker.")
    heap: str = Field("512m", description="JVM heap of the local broker (-Xmx and -Xms).")
    # The JIT's optimizing tier (C2) took a third of a fresh broker's CPU in its first
    # minutes on 2 cores (its compiler threads, in bench_e2e), beside the processes it
    # serves; the quick tier alone left the broker 0.75x the CPU and end-to-end capacity
    # 1.23x (docs/figures.md). A broker of its own machine wants "" (both tiers).
    jvm_options: str = Field(
        "-XX:TieredStopAtLevel=1",
        description="JVM options of the local broker beyond its heap, split on spaces.",
    )
    # Kafka's defaults (3 network threads, 8 request handlers) are sized for a broker with
    # cores of its own. Beside carelog's processes on 2 cores, one and two took 0.92x the
    # broker's CPU under bench_e2e at 500 msg/s (two A B B A runs, docs/figures.md).
    network_threads: int = Field(
        1, ge=1, description="num.network.threads of the local broker (its socket threads)."
    )
    io_threads: int = Field(
        2, ge=1, description="num.io.threads of the local broker (its request handlers)."
    )
    # Each partition a worker owns costs it a transaction per commit and batches of its own
    # (streams/topics.py, PROCESSING_PARTITIONS: 2 on one machine, 12 in production).
    partitions: int | None = Field(
        None,
        ge=1,
        description="Partitions of the inbound, translated and changes topics when carelog "
        "creates them (unset: 2 for local and test, 12 for production): at most that many "
        "workers share the work. Existing topics keep theirs; carelog never adds partitions "
        "to carelog.fhir.translated or carelog.fhir.changes once they hold records.",
    )
    client_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka settings (security.protocol, sasl.*, ...) as a JSON object.",
    )
    message_max_bytes: int = Field(
        1_048_576,
        validation_alias="CARELOG_MESSAGE_MAX_BYTES",
        description="Largest event carelog appends; bigger payloads go to the blob store.",
    )

    @property
    def bootstrap(self) -> str:
        """The cluster to talk to: the configured one, or the local broker."""
        return self.cluster or f"127.0.0.1:{self.port}"

    @property
    def uses_local_broker(self) -> bool:
        return self.cluster is None
