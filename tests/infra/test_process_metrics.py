"""Every process other than the gateway serves Prometheus metrics on its own port: the MLLP
listener, the worker, the projection, the sink and the notifier, started as `carelog`
subprocesses on the real broker (all at once, to keep the test short)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from streams.settings import PROJECT_ROOT, Settings
from streams.settings.metrics import MetricsSettings
from tests.kafka_fixture import free_port
from tests.streams.test_json_logs import LIBRDKAFKA, parse_log_line

pytestmark = pytest.mark.kafka

EXPECTED = {
    "mllp": ["carelog_mllp_messages_total", "carelog_mllp_acks_total", "carelog_mllp_ack_seconds_bucket",
             "carelog_log_records_total"],
    "worker": ["carelog_worker_messages_total", "carelog_worker_outputs_total",
               "carelog_worker_errors_total", 'carelog_consumer_lag{partition="0",reader="worker",topic="carelog.inbound.hl7v2"}',
               'carelog_consumer_lag_ok{reader="worker"} 1.0'],
    "projection": ["carelog_projection_events_total", "carelog_projection_versions_total",
                   "carelog_projection_undecodable_total",
                   'carelog_consumer_lag{partition="0",reader="projection",topic="carelog.fhir.changes"}',
                   'carelog_consumer_lag_ok{reader="projection"} 1.0'],
    "sink": ["carelog_sink_changes_total", "carelog_sink_batches_total",
             'carelog_consumer_lag{partition="0",reader="sink",topic="carelog.fhir.changes"}',
             'carelog_consumer_lag_ok{reader="sink"} 1.0'],
    "notifier": ["carelog_notifier_changes_total", "carelog_notifier_matched_total",
                 "carelog_notifier_latency_seconds_bucket",
                 'carelog_consumer_lag{partition="0",reader="notifier",topic="carelog.fhir.changes"}',
                 'carelog_consumer_lag_ok{reader="notifier"} 1.0'],
}  # fmt: skip


def test_each_process_serves_its_metrics(kafka_settings: Settings, tmp_path: Path) -> None:
    ports = {name: free_port() for name in EXPECTED}
    env = {
        **os.environ,
        "CARELOG_VAR_DIR": str(tmp_path),
        "CARELOG_LAKE_GROUP_ID": f"test-metrics-sink-{uuid.uuid4().hex[:8]}",
        "CARELOG_NOTIFIER_GROUP_ID": f"test-metrics-notifier-{uuid.uuid4().hex[:8]}",
        "CARELOG_NOTIFIER_PORT": str(free_port()),
        "CARELOG_NOTIFIER_CONTROL_PORT": str(free_port()),
        **{f"CARELOG_{name.upper()}_METRICS_PORT": str(port) for name, port in ports.items()},
    }
    commands = {
        "mllp": ["mllp", "--port", str(free_port())],
        "worker": ["worker", "--log-level", "warn"],
        "projection": ["projection"],
        "sink": ["sink"],
        "notifier": ["notifier"],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in commands}
    try:
        for name, args in commands.items():
            with logs[name].open("wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "infra.cli", *args], cwd=PROJECT_ROOT, env=env,
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
        pending = dict(EXPECTED)
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for name in list(pending):
                assert procs[name].poll() is None, f"{name} died: {logs[name].read_text()[-2000:]}"
                try:
                    body = httpx.get(f"http://127.0.0.1:{ports[name]}/metrics", timeout=5).text
                except httpx.HTTPError:
                    continue
                if all(metric in body for metric in pending[name]):
                    del pending[name]
            time.sleep(0.3)
        assert not pending, f"missing {pending}; logs: " + "".join(
            f"\n--- {n}\n{logs[n].read_text()[-1500:]}" for n in pending
        )
        # One log format for every process: JSON lines with the same keys (librdkafka's own
        # lines, `%<level>|...`, are written by the C library straight to stderr).
        for name, log_file in logs.items():
            for line in log_file.read_text().splitlines():
                if line and not LIBRDKAFKA.match(line):
                    assert parse_log_line(line), (name, line)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def test_a_scrape_answers_at_once_while_the_lag_read_is_slow() -> None:
    """The lag is read in the background: a broker slow to answer never slows /metrics."""
    from prometheus_client import REGISTRY

    from streams.lag import PartitionLag
    from streams.process_metrics import serve_metrics

    release = threading.Event()

    def slow_lag() -> list[PartitionLag]:
        release.wait(20)  # a broker that takes its time
        return [PartitionLag("carelog.slow", 0, 5, 0, 12)]

    port = free_port()
    settings = Settings(
        _env_file=None, metrics=MetricsSettings(_env_file=None, lag_interval_seconds=0.2)
    )
    assert serve_metrics("slowreader", settings, port, slow_lag)
    url = f"http://127.0.0.1:{port}/metrics"
    lag_series = 'carelog_consumer_lag{partition="0",reader="slowreader",topic="carelog.slow"} 7.0'
    try:
        started = time.monotonic()
        body = httpx.get(url, timeout=15).text
        assert time.monotonic() - started < 1.0  # served while the read is still waiting
        assert 'carelog_consumer_lag_ok{reader="slowreader"} 0.0' in body  # not read yet
        assert lag_series not in body
    finally:
        release.set()
    deadline = time.monotonic() + 10
    while lag_series not in body and time.monotonic() < deadline:
        time.sleep(0.1)
        body = httpx.get(url, timeout=5).text
    assert lag_series in body  # the last value read, served from then on
    assert 'carelog_consumer_lag_ok{reader="slowreader"} 1.0' in body
    assert REGISTRY.get_sample_value("carelog_consumer_lag_ok", {"reader": "slowreader"}) == 1.0
