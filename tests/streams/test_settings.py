"""The settings grouped by concern read the same environment variables as the flat class
they replaced: deployments, docs, manifests and the Makefile set these names."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from streams.settings import Settings, env_variables

# Every variable the flat Settings of streams/settings.py read before the split (generated
# from its fields, CARELOG_ + the field name upper-cased).
FLAT_NAMES = [
    "CARELOG_ACCESS_LOG",
    "CARELOG_ATTACHMENT_INLINE_MAX_BYTES",
    "CARELOG_AUTH_AUDIENCE",
    "CARELOG_AUTH_DISABLED",
    "CARELOG_AUTH_HS256_SECRET",
    "CARELOG_AUTH_ISSUER",
    "CARELOG_AUTH_JWKS_URL",
    "CARELOG_AUTH_PUBLIC_KEY",
    "CARELOG_BLOB_THRESHOLD_BYTES",
    "CARELOG_BLOB_URI",
    "CARELOG_BULK_EXPORT_DIR",
    "CARELOG_BULK_EXPORT_EXPIRE_SECONDS",
    "CARELOG_BULK_EXPORT_FILE_MAX_RESOURCES",
    "CARELOG_CACHE_DIR",
    "CARELOG_DICOM_MAX_PARTS",
    "CARELOG_DICOM_MAX_REQUEST_BYTES",
    "CARELOG_ENVIRONMENT",
    "CARELOG_FHIR_AUDIT_LINGER_MS",
    "CARELOG_FHIR_AUDIT_READS",
    "CARELOG_FHIR_SEARCH_LOOP_BUDGET_MS",
    "CARELOG_FHIR_STORE_BATCH_LINGER_MS",
    "CARELOG_FHIR_STORE_BATCH_MAX",
    "CARELOG_FHIR_STORE_BATCH_MS",
    "CARELOG_FHIR_STORE_PATH",
    "CARELOG_FHIR_STORE_REBUILD_INDEX_PROCESSES",
    "CARELOG_FHIR_WRITE_UNCHANGED_SECONDS",
    "CARELOG_FHIR_WRITE_WAIT_SECONDS",
    "CARELOG_GATEWAY_DELIVERY_TIMEOUT_MS",
    "CARELOG_GATEWAY_HOST",
    "CARELOG_GATEWAY_PORT",
    "CARELOG_GATEWAY_WORKERS",
    "CARELOG_KAFKA_BOOTSTRAP",
    "CARELOG_KAFKA_CLIENT_CONFIG",
    "CARELOG_KAFKA_CONTROLLER_PORT",
    "CARELOG_KAFKA_HEAP",
    "CARELOG_KAFKA_IO_THREADS",
    "CARELOG_KAFKA_JVM_OPTIONS",
    "CARELOG_KAFKA_NETWORK_THREADS",
    "CARELOG_KAFKA_PARTITIONS",
    "CARELOG_KAFKA_PORT",
    "CARELOG_KEY_REFRESH_SECONDS",
    "CARELOG_KEY_STORE",
    "CARELOG_LAKE_BATCH_LINGER_MS",
    "CARELOG_LAKE_BATCH_MAX_EVENTS",
    "CARELOG_LAKE_BATCH_MAX_SECONDS",
    "CARELOG_LAKE_DEIDENTIFY_SECRET",
    "CARELOG_LAKE_GROUP_ID",
    "CARELOG_LAKE_INSTANCE_ID",
    "CARELOG_LAKE_NICE",
    "CARELOG_LAKE_STORAGE_OPTIONS",
    "CARELOG_LAKE_URI",
    "CARELOG_LAKE_VACUUM_RETENTION_HOURS",
    "CARELOG_LAKE_VIEWS_DIR",
    "CARELOG_MASTER_KEY",
    "CARELOG_MAX_REQUEST_BYTES",
    "CARELOG_MESSAGE_KEYS_KEPT",
    "CARELOG_KEY_CACHE_DIR",
    "CARELOG_KEYS_KEPT",
    "CARELOG_LAKE_COMPACT_EVERY_COMMITS",
    "CARELOG_LAKE_COMPACT_TARGET_BYTES",
    "CARELOG_MESSAGE_MAX_BYTES",
    "CARELOG_METRICS_HOST",
    "CARELOG_METRICS_LAG_INTERVAL_SECONDS",
    "CARELOG_MLLP_FRAME_TIMEOUT_SECONDS",
    "CARELOG_MLLP_HOST",
    "CARELOG_MLLP_IDLE_TIMEOUT_SECONDS",
    "CARELOG_MLLP_MAX_CONNECTIONS",
    "CARELOG_MLLP_MAX_MESSAGE_BYTES",
    "CARELOG_MLLP_METRICS_PORT",
    "CARELOG_MLLP_PORT",
    "CARELOG_MLLP_TLS_CERT",
    "CARELOG_MLLP_TLS_CLIENT_CA",
    "CARELOG_MLLP_TLS_KEY",
    "CARELOG_NOTIFIER_BACKOFF_MAX_SECONDS",
    "CARELOG_NOTIFIER_BACKOFF_MIN_SECONDS",
    "CARELOG_NOTIFIER_BATCH_MS",
    "CARELOG_NOTIFIER_CONTROL_HOST",
    "CARELOG_NOTIFIER_CONTROL_PORT",
    "CARELOG_NOTIFIER_DELIVERY_TIMEOUT_SECONDS",
    "CARELOG_NOTIFIER_DIR",
    "CARELOG_NOTIFIER_FHIR_BASE",
    "CARELOG_NOTIFIER_GROUP_ID",
    "CARELOG_NOTIFIER_HOST",
    "CARELOG_NOTIFIER_MAX_EVENTS",
    "CARELOG_NOTIFIER_METRICS_PORT",
    "CARELOG_NOTIFIER_PORT",
    "CARELOG_NOTIFIER_TOKEN_TTL_SECONDS",
    "CARELOG_NOTIFIER_URL",
    "CARELOG_NOTIFIER_WS_URL",
    "CARELOG_PROCESSORS_APP_ID",
    "CARELOG_PROJECTION_METRICS_PORT",
    "CARELOG_RATE_LIMIT_BURST",
    "CARELOG_RATE_LIMIT_PER_SECOND",
    "CARELOG_SINK_METRICS_PORT",
    "CARELOG_SMART_AUTHORIZATION_ENDPOINT",
    "CARELOG_SMART_TOKEN_ENDPOINT",
    "CARELOG_VAR_DIR",
    "CARELOG_WORKER_COMMIT_IDLE_SECONDS",
    "CARELOG_WORKER_COMMIT_INTERVAL_SECONDS",
    "CARELOG_WORKER_INSTANCE_ID",
    "CARELOG_WORKER_METRICS_PORT",
    "CARELOG_WORKER_PROCESSES",
    "CARELOG_WORKER_PRODUCER_COMPRESSION",
    "CARELOG_WORKER_PRODUCER_LINGER_SECONDS",
    "CARELOG_WORKER_PRODUCER_MAX_BATCH_BYTES",
    "CARELOG_WORKER_SESSION_TIMEOUT_SECONDS",
    "CARELOG_WORKER_STREAM_BUFFER",
    "CARELOG_WORKER_VERSION_FIRST_RECORDS",
]


def sample(knob: str) -> str:
    """A value of each knob's type that differs from its default, as the environment says it."""
    if knob.endswith(("secret", "uri", "url", "key", "endpoint", "audience", "issuer", "base")):
        return f"set-{knob}"
    if knob.endswith(("_dir", ".dir", "path", "cert", "ca")):
        return f"/tmp/set/{knob}"
    if knob.endswith(("config", "options")):
        return '{"set": "yes"}'
    if knob.endswith(("log", "audit_reads", "disabled")):
        return "false" if knob.endswith(("log", "audit_reads")) else "true"
    return {
        "environment": "test",
        "kafka.heap": "1g",
        "worker.producer_compression": "lz4",
        "privacy.key_store": "memory",
    }.get(knob, "7")


def value_of(settings: Settings, knob: str) -> object:
    value: object = settings
    for part in knob.split("."):
        value = getattr(value, part)
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_every_variable_keeps_its_name() -> None:
    assert sorted(env_variables()) == sorted(FLAT_NAMES)


def test_each_variable_sets_its_knob_from_environment_and_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    knobs = env_variables()
    for name in knobs:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    defaults = Settings()
    names = sorted(knobs)
    from_env, from_dotenv = names[::2], names[1::2]  # half from each source
    for name in from_env:
        monkeypatch.setenv(name, sample(knobs[name]))
    (tmp_path / ".env").write_text("".join(f"{n}={sample(knobs[n])}\n" for n in from_dotenv))
    read = Settings()
    for name, knob in knobs.items():
        got, default = value_of(read, knob), value_of(defaults, knob)
        assert got != default, f"{name} did not set {knob} (still {default!r})"
        assert str(got).lower() in (sample(knob), "7.0", "{'set': 'yes'}"), (name, got)

    ignoring = Settings(_env_file=None)  # nor does any concern read .env then
    for name in from_dotenv:
        assert value_of(ignoring, knobs[name]) == value_of(defaults, knobs[name]), name


def test_amended_changes_one_knob_and_refuses_unknown_ones() -> None:
    settings = Settings(_env_file=None)
    changed = settings.amended(mllp={"port": 1}, environment="test")
    assert (changed.mllp.port, changed.mllp.host, changed.environment) == (
        1,
        settings.mllp.host,
        "test",
    )
    assert settings.mllp.port != 1  # the original is left as it was
    with pytest.raises(AttributeError):
        settings.amended(mllp={"mllp_port": 1})
    with pytest.raises(AttributeError):
        settings.amended(mllp_port=1)
