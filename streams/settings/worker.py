"""The processors' Faust worker (processors/worker.py, `carelog worker`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from streams.settings.concern import Concern


class WorkerSettings(Concern):
    model_config = SettingsConfigDict(env_prefix="CARELOG_WORKER_")

    app_id: str = Field(
        "carelog-processors",
        validation_alias="CARELOG_PROCESSORS_APP_ID",
        description="Faust app id of `carelog worker`: its consumer group, transactional ids "
        "and table changelog topics. Workers with one id share the work.",
    )
    session_timeout_seconds: float = Field(
        60.0,
        description="Consumer session timeout of `carelog worker`: how long the group waits "
        "for a member that stopped answering (e.g. killed) before its partitions move on.",
    )
    instance_id: str | None = Field(
        None,
        description="A static member id of `carelog worker` in its group (Kafka's "
        "group.instance.id), unique among the live workers: restarted with it, the worker takes "
        "its partitions back at once instead of after session_timeout_seconds. A worker "
        "stopped for good with one keeps its partitions for that long. `carelog run` sets it.",
    )
    commit_interval_seconds: float = Field(
        0.5,
        description="How often `carelog worker` commits its transactions. Each stage's output "
        "becomes readable (read_committed) only then, so this bounds the latency of a write "
        "(a FHIR PUT waits for two commits and the projection). Faust's default is 2.8 s.",
    )
    commit_idle_seconds: float = Field(
        0.05,
        description="`carelog worker` also commits as soon as it has handled everything it "
        "read, at most this often (processors/commit_when_idle.py): an output then waits for "
        "no timer when the worker keeps up. 0 commits on commit_interval_seconds only.",
    )
    producer_linger_seconds: float = Field(
        0.25,
        description="How long `carelog worker`'s producers gather records before sending them "
        "in one request. With 0 (Faust's default) each of the ~26 records an ORU^R01 gives "
        "went in a produce request of its own, and those requests were a quarter of the "
        "worker's CPU; 0.25 took 0.88x the CPU of 0.05 (same run). A write waits no longer "
        "for it: records are readable only when their transaction commits (every "
        "commit_interval_seconds), and a commit sends every lingering batch first.",
    )
    producer_max_batch_bytes: int = Field(
        524288,
        description="Largest batch of records for one partition that `carelog worker`'s "
        "producers send in one request (Faust's default is 16 KiB, a few ORU^R01 resources). "
        "A full batch is sent without waiting for the linger time.",
    )
    producer_compression: str | None = Field(
        None,
        description="Compression of what `carelog worker` produces (none, or gzip, snappy, "
        "lz4, zstd); readers decompress whatever they find.",
    )
    version_first_records: int = Field(
        2000,
        description="While more translated records than this wait for `carelog worker`'s "
        "version stage, it stops fetching inbound messages (they wait on the log) and takes "
        "them up again below a quarter of it (processors/version_first.py). Otherwise, under "
        "a backlog, translation runs ahead of what becomes readable. 0 turns it off.",
    )
    stream_buffer: int = Field(
        4096,
        description="Events `carelog worker` fetches ahead and queues for each agent "
        "(Faust's stream_buffer_maxsize): the memory a backlog may take, and the inbound "
        "messages still translated after version_first_records pauses the fetch.",
    )
    # One worker is one event loop on one thread. On a machine shared with the broker and
    # the other processes it waits its turn for a core (bench_e2e: a third of its time at
    # 500 msg/s on 2 cores), and it is the one stage that cannot batch that away.
    processes: int = Field(
        2,
        ge=1,
        description="How many `carelog worker` processes `carelog run` starts; they share "
        "the processing topics' partitions (CARELOG_KAFKA_PARTITIONS), so more than those "
        "leaves the extra ones idle. On 2 cores two took 1.14x the messages of one through "
        "to the store (docs/figures.md).",
    )
    metrics_port: int = Field(
        9102,
        description="`carelog worker` metrics port (0: off); `carelog run`'s second worker "
        "uses this + 10, its third + 20.",
    )
