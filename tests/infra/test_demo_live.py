"""`carelog demo` against a real carelog on the session broker: gateway, MLLP listener,
worker, FHIR store projection and Delta sink as processes; the demo as its user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from api.security.dev_token import dev_secret
from api.security.dev_token import mint_token as mint
from infra.demo.plan import make_plan
from infra.demo.rejections import find_rejections, marks
from streams.settings import PROJECT_ROOT, Settings
from tests.kafka_fixture import free_port
from tests.system.harness import gateway_ready, wait_until

pytestmark = pytest.mark.kafka
SEED, PATIENTS = 11, 3


class Carelog:
    """The processes of a carelog, sharing one var dir (dev secret, FHIR store, lake)."""

    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir
        self.http_port, self.mllp_port = free_port(), free_port()
        self.gateway = f"http://127.0.0.1:{self.http_port}"
        self.env = {**os.environ, "CARELOG_VAR_DIR": str(var_dir)}
        self.env.pop("CARELOG_AUTH_HS256_SECRET", None)  # the demo mints with the dev secret
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with (self.var_dir / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "infra.cli", *args], cwd=PROJECT_ROOT, env=self.env,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def logs(self) -> str:
        return "\n".join(
            f"--- {n}\n{(self.var_dir / f'{n}.log').read_text(errors='replace')[-3000:]}"
            for n in self.procs
        )

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)  # the test is over: no need to wait for a graceful Faust exit
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def carelog(
    kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Carelog]:
    system = Carelog(tmp_path_factory.mktemp("demo"))
    with ExitStack() as stack:
        stack.callback(system.stop)
        system.start("worker", "worker", "--log-level", "warn")
        system.start("projection", "projection")
        system.start("sink", "sink")
        system.start("gateway", "gateway", "--port", str(system.http_port))
        system.start("mllp", "mllp", "--port", str(system.mllp_port))
        wait_until(lambda: gateway_ready(system.gateway), 60, system.logs)
        yield system


def test_demo_shows_a_patient_over_fhir_and_its_rejections(
    carelog: Carelog, kafka_settings: Settings
) -> None:
    since = marks(kafka_settings)
    demo = subprocess.run(
        [sys.executable, "-m", "infra.cli", "demo", "--patients", str(PATIENTS), "--seed",
         str(SEED), "--gateway", carelog.gateway, "--mllp", f"127.0.0.1:{carelog.mllp_port}",
         "--wait", "90"],
        cwd=PROJECT_ROOT, env={**carelog.env, "COLUMNS": "200"}, capture_output=True,
        text=True, timeout=240,
    )  # fmt: skip
    output = demo.stdout + demo.stderr
    (carelog.var_dir / "demo.out").write_text(output)  # kept for a look after a failure
    assert demo.returncode == 0, output + carelog.logs()

    plan = make_plan(SEED, PATIENTS)
    person = plan.shown
    assert f"/fhir/Patient/{person.fhir_id}" in output and "curl -s" in output
    # The patient, read over /fhir by a reader of our own.
    token = mint(dev_secret(kafka_settings.amended(var_dir=carelog.var_dir)),
                 "system/*.read", "demo-test")  # fmt: skip
    read = httpx.get(f"{carelog.gateway}/fhir/Patient/{person.fhir_id}",
                     headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert read.status_code == 200, read.text
    patient = read.json()
    assert patient["name"][0]["family"] == person.family
    assert {"system": "urn:carelog:sid:DEMO_HOSP", "value": person.mrn} in [
        {k: i[k] for k in ("system", "value")} for i in patient["identifier"]
    ]
    everything = httpx.get(f"{carelog.gateway}/fhir/Patient/{person.fhir_id}/$everything",
                           headers={"Authorization": f"Bearer {token}"}).json()  # fmt: skip
    types = {e["resource"]["resourceType"] for e in everything["entry"]}
    assert {"Encounter", "Observation", "DiagnosticReport", "ImagingStudy"} <= types

    # Every deliberately bad message is on carelog.rejected, with its reason.
    found = find_rejections(kafka_settings, since, plan.bad, timeout=30)
    assert set(found) == {m.tag for m in plan.bad}
    assert all(r.reason for r in found.values())
    for message in plan.bad:
        assert message.label in output
    assert "not on carelog.rejected" not in output
    # The report read the patient's Delta rows from the lake under the var dir.
    assert str(carelog.var_dir / "lake" / "silver" / "patient") in output
