"""`carelog gateway` with several worker processes: what each process keeps for itself is
made right for the whole gateway (rate limits, metrics), and no worker outlives it."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.security.dev_token import mint_token
from api.security.rate_limit import RateLimiter
from api.server import MAX_AUTO_WORKERS, cgroup_cpu_quota, worker_count
from streams.settings import Settings
from streams.settings.gateway import GatewaySettings
from tests.kafka_fixture import free_port
from tests.system.harness import gateway_ready

SECRET = "workers-secret-" + "w" * 40


def test_worker_count_is_the_setting_or_one_per_core() -> None:
    assert worker_count(Settings(gateway=GatewaySettings(workers=3))) == 3
    assert (
        worker_count(Settings(gateway=GatewaySettings(workers=3)), workers=1) == 1
    )  # --workers wins
    cores = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    assert worker_count(Settings(gateway=GatewaySettings(workers=0))) == max(
        1, min(cores, MAX_AUTO_WORKERS)
    )
    assert Settings().gateway.workers == 0  # the default: as many as the machine has cores


def test_a_container_cpu_limit_bounds_the_automatic_count(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_quota(tmp_path) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.0
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path) is None


def test_each_of_n_processes_enforces_a_share_of_the_rate_limit() -> None:
    settings = Settings(
        gateway=GatewaySettings(rate_limit_per_second=10.0, rate_limit_burst=5, workers=2)
    )
    share = RateLimiter.share_of(settings)
    assert (share.rate, share.burst) == (5.0, 3)
    alone = RateLimiter.share_of(settings.amended(gateway={"workers": 1}))
    assert (alone.rate, alone.burst) == (10.0, 5)


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.kafka
def test_two_workers_count_every_request_and_die_with_the_gateway(
    kafka_settings: Settings, corpus: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, "CARELOG_VAR_DIR": str(tmp_path), "CARELOG_AUTH_HS256_SECRET": SECRET,
           "CARELOG_KAFKA_BOOTSTRAP": kafka_settings.kafka.bootstrap,
           "CARELOG_ENVIRONMENT": kafka_settings.environment}  # fmt: skip
    log = (tmp_path / "gateway.log").open("w+")
    gateway = subprocess.Popen(
        [sys.executable, "-m", "infra.cli", "gateway", "--port", str(port), "--workers", "2"],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while len(workers) < 2 or not gateway_ready(base):
            assert gateway.poll() is None and time.monotonic() < deadline, "gateway not ready"
            workers = _children(gateway.pid) - {gateway.pid}
            time.sleep(0.2)
        token = mint_token(SECRET, "system/hl7v2.write", "workers-test", ttl=600)
        message = (corpus / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()
        headers = {"content-type": "x-application/hl7-v2+er7", "authorization": f"Bearer {token}"}
        sent = 60
        for _ in range(sent):  # a new connection each: the kernel spreads them over the workers
            response = httpx.post(f"{base}/hl7v2", content=message, headers=headers, timeout=30)
            assert response.status_code == 200, response.text
        for _ in range(6):  # whichever worker answers /metrics, it counts all of them
            text = httpx.get(f"{base}/metrics", timeout=30).text
            assert _sample(text, "carelog_gateway_requests_total", 'route="/hl7v2"',
                           'status="200"') == sent  # fmt: skip
            assert _sample(text, "carelog_gateway_events_appended_total", 'format="hl7v2"') == sent
        processes = _children(gateway.pid)
        assert len(processes) >= 2
        gateway.send_signal(signal.SIGKILL)  # a crash: no chance to stop the workers itself
        gateway.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in processes if _alive(p)], "workers outlived the gateway"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base}/healthz", timeout=2)
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(10)
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _sample(exposition: str, name: str, *labels: str) -> float:
    """The value of the one sample of `name` whose labels include all of `labels`."""
    values = [
        float(line.rpartition(" ")[2])
        for line in exposition.splitlines()
        if line.startswith(name + "{") and all(label in line for label in labels)
    ]
    assert len(values) == 1, exposition[:3000]
    return values[0]
