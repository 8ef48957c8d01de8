"""`carelog token` and `carelog gateway` as a sender meets them: a real uvicorn process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from streams.settings import Settings
from tests.kafka_fixture import free_port
from tests.system.harness import gateway_ready, wait_until

pytestmark = pytest.mark.kafka


def carelog(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "infra.cli", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=True)  # fmt: skip


def test_dev_token_and_gateway_process(
    kafka_settings: Settings, corpus: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "CARELOG_VAR_DIR": str(tmp_path)}
    env.pop("CARELOG_AUTH_HS256_SECRET", None)  # both sides fall back to the dev secret in var/
    token = carelog(
        "token", "--scope", "system/hl7v2.write", "--sub", "ehr-1", env=env
    ).stdout.splitlines()[-1]
    assert (tmp_path / "auth" / "dev-hs256-secret").stat().st_mode & 0o777 == 0o600

    port = free_port()
    log = (tmp_path / "gateway.log").open("w+")
    process = subprocess.Popen([sys.executable, "-m", "infra.cli", "gateway", "--port", str(port)],
                               env=env, stderr=log, stdout=log)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        # Workers (one per core) start in parallel.
        wait_until(lambda: gateway_ready(base), 90, lambda: "gateway did not become ready")
        message = (corpus / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()
        headers = {"content-type": "x-application/hl7-v2+er7", "authorization": f"Bearer {token}"}
        response = httpx.post(f"{base}/hl7v2", content=message, headers=headers)
        assert response.status_code == 200
        assert "MSA|AA|NWH-LAB-7001" in response.text
        headers["authorization"] = (
            "Bearer " + token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        )
        assert httpx.post(f"{base}/hl7v2", content=message, headers=headers).status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)
    log.seek(0)
    lines = [orjson.loads(line) for line in log.read().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("logger") == "carelog.gateway.access"]
    assert {(a["route"], a["status"], a["client"]) for a in access if a["route"] == "/hl7v2"} >= {
        ("/hl7v2", 200, "ehr-1")
    }
