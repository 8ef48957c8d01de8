"""carelog's settings, read once from the environment (CARELOG_ prefix) and typed."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Every knob carelog has. Set CARELOG_<NAME> in the environment (or a .env file)."""

    model_config = SettingsConfigDict(env_prefix="CARELOG_", env_file=".env", extra="ignore")

    environment: str = Field(
        "local", description="Topic catalogue overrides to apply: local, test or production."
    )
    kafka_bootstrap: str | None = Field(
        None,
        description="bootstrap.servers of an existing cluster; when set carelog starts no broker.",
    )
    kafka_port: int = Field(9092, description="Port of the local broker carelog starts itself.")
    kafka_controller_port: int = Field(9093, description="KRaft controller port of that broker.")
    var_dir: Path = Field(
        PROJECT_ROOT / "var", description="Runtime state: broker data, logs, pids."
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "carelog",
        description="Downloads kept between checkouts (the broker's jars), outside the repository.",
    )
    kafka_heap: str = Field("512m", description="JVM heap of the local broker (-Xmx and -Xms).")
    kafka_client_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka settings (security.protocol, sasl.*, ...) as a JSON object.",
    )
    message_max_bytes: int = Field(
        1_048_576,
        description="Largest event carelog appends; bigger payloads go to the blob store.",
    )
    blob_threshold_bytes: int = Field(
        900_000,
        description="Payloads larger than this are kept in the blob store and the event carries "
        "a reference; keep it below message_max_bytes.",
    )
    blob_uri: str | None = Field(
        None, description="Where big payloads go (file:///path); default file://<var_dir>/blobs."
    )
    attachment_inline_max_bytes: int = Field(
        262_144,
        description="Largest document (HL7 v2 OBX ED, e.g. a PDF) kept inline in "
        "DocumentReference.content.attachment.data; bigger ones go to the blob store and the "
        "attachment carries its url, size and hash. Keep it well below message_max_bytes.",
    )
    dicom_max_request_bytes: int = Field(
        256 * 1024 * 1024, description="Largest DICOMweb STOW-RS request body; larger ones get 413."
    )
    dicom_max_parts: int = Field(
        1000,
        description="Most instances (multipart parts) in one STOW-RS request; more get 413 "
        "and the request is kept on carelog.rejected.",
    )

    # The MLLP listener (api/mllp/listener.py).
    mllp_host: str = Field(
        "127.0.0.1",
        description="Address `carelog mllp` listens on; beyond loopback, use TLS "
        "(mllp_tls_cert, and mllp_tls_client_ca to authenticate senders).",
    )
    mllp_port: int = Field(2575, description="Port `carelog mllp` listens on.")
    mllp_max_message_bytes: int = Field(
        1_000_000,
        description="Largest HL7 v2 message over MLLP; a larger one is refused (AR) and its "
        "connection closed, whether or not its end block came.",
    )
    mllp_max_connections: int = Field(
        500,
        description="MLLP connections open at once; one more is closed as soon as accepted "
        "(logged, counted in carelog_mllp_connections_refused_total).",
    )
    mllp_idle_timeout_seconds: float = Field(
        300.0,
        description="Close an MLLP connection after this long without a message, an ACK or "
        "a frame in progress.",
    )
    mllp_frame_timeout_seconds: float = Field(
        30.0,
        description="A frame must end (FS CR) within this many seconds of its start block, "
        "else it is refused (AR when its MSH is readable) and the connection closed (0: off).",
    )
    mllp_tls_cert: Path | None = Field(None, description="PEM certificate chain: MLLP over TLS.")
    mllp_tls_key: Path | None = Field(None, description="PEM private key of mllp_tls_cert.")
    mllp_tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle: when set, MLLP clients must present a certificate."
    )
    mllp_metrics_port: int | None = Field(
        9101, description="Serve the MLLP listener's Prometheus metrics on this port (0: off)."
    )

    # Prometheus /metrics of the processes other than the gateway (which serves its own on
    # its port). A port already in use is logged and that process runs without metrics.
    metrics_host: str = Field(
        "127.0.0.1", description="Address the processes' metrics endpoints listen on."
    )
    worker_metrics_port: int = Field(9102, description="`carelog worker` metrics port (0: off).")
    projection_metrics_port: int = Field(
        9103, description="`carelog projection` metrics port (0: off)."
    )
    sink_metrics_port: int = Field(9104, description="`carelog sink` metrics port (0: off).")
    metrics_lag_interval_seconds: float = Field(
        5.0,
        description="How often the worker, projection and sink read their consumer lag (in "
        "the background); /metrics serves the last reading.",
    )

    # The HTTP gateway (api/).
    gateway_host: str = Field("127.0.0.1", description="Address `carelog gateway` listens on.")
    gateway_port: int = Field(8080, description="Port `carelog gateway` listens on.")
    gateway_workers: int = Field(
        0,
        ge=0,
        description="Processes `carelog gateway` serves with (uvicorn workers sharing the "
        "port): 0 is one per CPU core this process may use, at most 4; 1 is one process.",
    )
    gateway_delivery_timeout_ms: int = Field(
        5000,
        description="message.timeout.ms of the gateway's producer: how long a sender waits "
        "for the broker before it is told 503 / AE and to retry.",
    )
    max_request_bytes: int = Field(
        1_000_000, description="Largest request body the gateway reads; larger ones get 413."
    )
    rate_limit_per_second: float = Field(
        500.0,
        description="Sustained requests per second per client (JWT sub, else IP), over all "
        "the gateway's processes (each of N enforces 1/N of it).",
    )
    rate_limit_burst: int = Field(
        1000, description="Requests a client may send at once (each of N processes: 1/N)."
    )
    access_log: bool = Field(True, description="One JSON log line per gateway request.")
    auth_disabled: bool = Field(
        False, description="Turn bearer-token checks off (development only; logged loudly)."
    )
    auth_jwks_url: str | None = Field(
        None, description="JWKS URL of the token issuer (RS256/ES256 tokens)."
    )
    auth_public_key: str | None = Field(
        None, description="PEM public key (or a path to one) verifying RS256/ES256 tokens."
    )
    auth_hs256_secret: SecretStr | None = Field(
        None, description="Shared secret for HS256 tokens (development)."
    )
    auth_audience: str | None = Field(None, description="Required `aud` claim, when set.")
    auth_issuer: str | None = Field(None, description="Required `iss` claim, when set.")

    # The processors' Faust worker (processors/worker.py).
    processors_app_id: str = Field(
        "carelog-processors",
        description="Faust app id of `carelog worker`: its consumer group, transactional ids "
        "and table changelog topics. Workers with one id share the work.",
    )
    worker_session_timeout_seconds: float = Field(
        60.0,
        description="Consumer session timeout of `carelog worker`: how long the group waits "
        "for a member that stopped answering (e.g. killed) before its partitions move on.",
    )
    worker_commit_interval_seconds: float = Field(
        0.5,
        description="How often `carelog worker` commits its transactions. Each stage's output "
        "becomes readable (read_committed) only then, so this bounds the latency of a write "
        "(a FHIR PUT waits for two commits and the projection). Faust's default is 2.8 s.",
    )
    worker_commit_idle_seconds: float = Field(
        0.05,
        description="`carelog worker` also commits as soon as it has handled everything it "
        "read, at most this often (processors/commit_when_idle.py): an output then waits for "
        "no timer when the worker keeps up. 0 commits on worker_commit_interval_seconds only.",
    )
    worker_producer_linger_seconds: float = Field(
        0.25,
        description="How long `carelog worker`'s producers gather records before sending them "
        "in one request. With 0 (Faust's default) each of the ~26 records an ORU^R01 gives "
        "went in a produce request of its own, and those requests were a quarter of the "
        "worker's CPU; 0.25 took 0.88x the CPU of 0.05 (same run). A write waits no longer "
        "for it: records are readable only when their transaction commits (every "
        "worker_commit_interval_seconds), and a commit sends every lingering batch first.",
    )
    worker_producer_max_batch_bytes: int = Field(
        524288,
        description="Largest batch of records for one partition that `carelog worker`'s "
        "producers send in one request (Faust's default is 16 KiB, a few ORU^R01 resources). "
        "A full batch is sent without waiting for the linger time.",
    )
    worker_producer_compression: str | None = Field(
        None,
        description="Compression of what `carelog worker` produces (none, or gzip, snappy, "
        "lz4, zstd); readers decompress whatever they find.",
    )

    # The Delta Lake sink (projections/lake/).
    lake_uri: str | None = Field(
        None,
        description="Where the Delta tables go: a path or an object-storage URL "
        "(s3://, az://, gs://); default <var_dir>/lake.",
    )
    lake_storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="deltalake storage options for lake_uri (credentials, endpoint, region) "
        "as a JSON object.",
    )
    lake_views_dir: Path | None = Field(
        None, description="Folder of extra SQL-on-FHIR ViewDefinitions (*.json), one table each."
    )
    lake_batch_max_events: int = Field(
        20_000, description="A sink micro-batch is written after this many changes..."
    )
    lake_batch_max_seconds: float = Field(1.0, description="...or after this many seconds.")
    lake_group_id: str = Field("carelog-lake-sink", description="Consumer group of `carelog sink`.")
    lake_deidentify_secret: SecretStr | None = Field(
        None, description="When set, also write de-identified tables, ids hashed with this key."
    )

    # `carelog notifier`: FHIR Subscriptions (projections/notifier/).
    notifier_dir: Path | None = Field(
        None, description="The notifier's state (its SQLite files); default <var_dir>/notifier."
    )
    notifier_group_id: str = Field(
        "carelog-notifier", description="Consumer group of the notifier."
    )
    notifier_host: str = Field(
        "127.0.0.1", description="Address the notifier's websocket and control port listen on."
    )
    notifier_port: int = Field(8091, description="The notifier's websocket port (path /ws).")
    notifier_control_port: int = Field(
        8092,
        description="The notifier's control port ($status, binding tokens): the gateway's only.",
    )
    notifier_url: str = Field(
        "http://127.0.0.1:8092",
        description="Where the gateway reaches the notifier's control port.",
    )
    notifier_ws_url: str = Field(
        "ws://127.0.0.1:8091/ws", description="The websocket URL clients are told to connect to."
    )
    notifier_fhir_base: str = Field(
        "http://127.0.0.1:8080/fhir", description="FHIR base URL named in notification bundles."
    )
    notifier_metrics_port: int = Field(
        9105, description="`carelog notifier` metrics port (0: off)."
    )
    notifier_batch_ms: int = Field(20, description="Changes matched together within this time.")
    notifier_max_events: int = Field(100, description="Most events in one notification bundle.")
    notifier_backoff_min_seconds: float = Field(
        1.0, description="First wait after a failed delivery; doubled per failure..."
    )
    notifier_backoff_max_seconds: float = Field(300.0, description="...up to this many seconds.")
    notifier_delivery_timeout_seconds: float = Field(
        10.0, description="A rest-hook POST that takes longer has failed."
    )
    notifier_token_ttl_seconds: int = Field(
        300, description="How long a websocket binding token may be used."
    )
    lake_vacuum_retention_hours: int = Field(
        168, description="`carelog lake optimize` removes unreferenced files older than this."
    )

    # PHI encryption and erasure (streams/privacy/, api/erasure/).
    key_store: Literal["kafka", "memory", "off"] = Field(
        "kafka",
        description="Where the data keys that seal PHI in events live: kafka (the compacted "
        "topic carelog.keys, shared by every process), memory (this process only: tests) or "
        "off (events in clear, as before v2 of the schemas; nothing can then be erased).",
    )
    master_key: SecretStr | None = Field(
        None,
        description="32 random bytes, base64: wraps every data key on carelog.keys. Required "
        "in production; elsewhere a development key is generated in <var_dir>/master.key.",
    )
    key_refresh_seconds: float = Field(
        2.0, description="Each process reads key shreds made elsewhere within this long."
    )

    # The FHIR store projection (projections/fhir_store/).
    fhir_store_path: Path | None = Field(
        None, description="SQLite file of the FHIR store; default <var_dir>/fhir-store.sqlite."
    )
    fhir_store_batch_max: int = Field(
        5000, description="The projection applies up to this many events per transaction..."
    )
    fhir_store_batch_ms: int = Field(
        200, description="...or what arrived within this many ms of a batch's first event..."
    )
    fhir_store_batch_linger_ms: int = Field(
        0,
        description="...or, once no more has arrived for this many ms, what has: 0 applies "
        "what was fetched as soon as it is there (a change waits for no timer; under load "
        "the batches grow by themselves, with what arrives while one is applied).",
    )
    fhir_store_rebuild_index_processes: int = Field(
        1,
        description="`carelog projection rebuild`: processes extracting and writing the index "
        "rows beside the one reading the log (0: that one does it all).",
    )

    # FHIR REST over the store (api/routes_fhir_*.py).
    fhir_write_wait_seconds: float = Field(
        10.0,
        description="A FHIR write waits this long for the store to show its change (or its "
        "rejection) before it is answered 202; 0 answers 202 at once.",
    )
    fhir_write_unchanged_seconds: float = Field(
        6.0,
        description="A write the store already reflects (same content, or deleting what is "
        "gone) produces no change on the log; it is answered 200 with the current version "
        "after this long without a change or a rejection.",
    )
    fhir_audit_reads: bool = Field(
        True,
        description="Append an AuditEvent to carelog.audit (straight from the gateway, not "
        "through the processors) for every read or search of FHIR data.",
    )
    fhir_search_loop_budget_ms: float = Field(
        2.0,
        ge=0,
        description="CPU a FHIR search, history or $everything may take on the gateway's "
        "event loop before it is stopped and run again in a worker thread; 0 runs every one "
        "in a thread (more CPU per search, but a process may then use more than one core).",
    )
    fhir_audit_linger_ms: int = Field(
        50,
        ge=0,
        description="linger.ms of the gateway's own producer of AuditEvents: nobody waits "
        "for an audit record, so fewer, larger batches (half the producer CPU per read of "
        "5 ms, the ingest producer's); an AuditEvent is readable that much later.",
    )
    bulk_export_dir: Path | None = Field(
        None,
        description="Where FHIR $export jobs write their files; default <var_dir>/bulk-export.",
    )
    bulk_export_expire_seconds: float = Field(
        86400.0, description="A finished $export job (and its files) is deleted after this long."
    )
    bulk_export_file_max_resources: int = Field(
        100_000, description="An $export NDJSON file holds at most this many resources."
    )
    smart_authorization_endpoint: str | None = Field(
        None, description="OAuth authorize URL published in /.well-known/smart-configuration."
    )
    smart_token_endpoint: str | None = Field(
        None, description="OAuth token URL published in /.well-known/smart-configuration."
    )

    @property
    def bootstrap(self) -> str:
        """The cluster to talk to: the configured one, or the local broker."""
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def uses_local_broker(self) -> bool:
        return self.kafka_bootstrap is None

    @property
    def fhir_store_file(self) -> Path:
        return self.fhir_store_path or self.var_dir / "fhir-store.sqlite"

    @property
    def bulk_export_root(self) -> Path:
        return self.bulk_export_dir or self.var_dir / "bulk-export"

    @property
    def notifier_state_dir(self) -> Path:
        return self.notifier_dir or self.var_dir / "notifier"


@cache
def get_settings() -> Settings:
    return Settings()
