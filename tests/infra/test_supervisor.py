"""The supervisor of `carelog run`: a process that dies is restarted and reported, the one
started first (the broker) is ready before the others start, and it is stopped last."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.supervisor import Service, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_process_that_dies_is_restarted_and_reported(tmp_path: Path) -> None:
    worker = Service("worker", SLEEPER)
    supervisor = Supervisor([worker], tmp_path / "logs")
    supervisor.start_all()
    try:
        first = worker.process
        assert first is not None
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        supervisor.check()  # sees the death, schedules the restart
        assert worker.last_exit == -signal.SIGKILL and worker.process is None

        def restarted() -> bool:
            supervisor.check()
            return worker.process is not None

        _wait(restarted, timeout=5)
        assert worker.process is not None and worker.process.pid != first.pid
        assert worker.restarts == 1
        assert any("worker exited with code -9" in e for e in supervisor.events)
        assert any("restarted worker (restart #1)" in e for e in supervisor.events)
    finally:
        supervisor.stop_all(timeout=5)
    assert worker.process is not None and worker.process.poll() is not None


def test_the_first_service_is_ready_before_the_rest_and_stops_last(tmp_path: Path) -> None:
    ready_file = tmp_path / "broker-ready"
    order = tmp_path / "order"
    broker = Service("kafka", [sys.executable, "-c", (
        "import pathlib, signal, sys, time\n"
        f"def bye(*_): pathlib.Path({str(order)!r}).open('a').write('kafka\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "time.sleep(0.5)\n"
        f"pathlib.Path({str(ready_file)!r}).touch()\n"
        "time.sleep(600)\n"
    )], tier=0)  # fmt: skip
    app = Service("gateway", [sys.executable, "-c", (
        "import pathlib, signal, sys, time\n"
        f"def bye(*_): time.sleep(0.5); pathlib.Path({str(order)!r}).open('a').write('gateway\\n'); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "time.sleep(600)\n"
    )])  # fmt: skip
    supervisor = Supervisor([], tmp_path / "logs")
    supervisor.start_first(broker, ready_file.exists, timeout=10)
    assert ready_file.exists()
    supervisor.services.append(app)
    supervisor.start_all()  # starts the gateway only: the broker runs already
    assert broker.restarts == 0 and app.process is not None
    _wait(lambda: (supervisor.log_dir / "gateway.log").exists())
    time.sleep(0.3)  # let the gateway install its SIGTERM handler
    supervisor.stop_all(timeout=10)
    assert order.read_text().split() == ["gateway", "kafka"]


def test_a_first_service_that_exits_is_an_error_naming_its_log(tmp_path: Path) -> None:
    supervisor = Supervisor([], tmp_path / "logs")
    dead = Service("kafka", [sys.executable, "-c", "raise SystemExit(3)"], tier=0)
    with pytest.raises(RuntimeError, match=r"kafka exited with code 3; see .*kafka\.log"):
        supervisor.start_first(dead, lambda: False, timeout=10)
