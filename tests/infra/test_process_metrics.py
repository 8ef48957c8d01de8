"""Every process other than the gateway serves Prometheus metrics on its own port: the MLLP
listener, the worker, the projection and the sink, started as `carelog` subprocesses on the
real broker (all four at once, to keep the test short)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from streams.settings import PROJECT_ROOT, Settings
from tests.kafka_fixture import free_port

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
}  # fmt: skip


def test_each_process_serves_its_metrics(kafka_settings: Settings, tmp_path: Path) -> None:
    ports = {name: free_port() for name in EXPECTED}
    env = {
        **os.environ,
        "CARELOG_VAR_DIR": str(tmp_path),
        "CARELOG_LAKE_GROUP_ID": f"test-metrics-sink-{uuid.uuid4().hex[:8]}",
        **{f"CARELOG_{name.upper()}_METRICS_PORT": str(port) for name, port in ports.items()},
    }
    commands = {
        "mllp": ["mllp", "--port", str(free_port())],
        "worker": ["worker", "--log-level", "warn"],
        "projection": ["projection"],
        "sink": ["sink"],
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
