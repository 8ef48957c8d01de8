"""Runs carelog's processes on one machine: starts each, restarts one that dies (with
back-off, and says so), keeps a log per process under var/logs/, and stops all on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RESTART_BACKOFF_MAX = 30.0


@dataclass
class Service:
    name: str
    argv: list[str]
    url: str = ""
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    backoff: float = 1.0
    started_at: float = field(default=0.0)
    last_exit: int | None = None  # exit code of the last run that ended
    tier: int = 1  # lower tiers start first and stop last (the broker is tier 0)
    env: dict[str, str] = field(default_factory=dict)  # its settings beyond the machine's


def carelog_command(*args: str) -> list[str]:
    """argv running a `carelog` subcommand with this interpreter (works without the script)."""
    return [sys.executable, "-m", "infra.cli", *args]


class Supervisor:
    def __init__(self, services: list[Service], log_dir: Path) -> None:
        self.services = services
        self.log_dir = log_dir
        self._stopping = False
        self.events: deque[str] = deque(maxlen=8)  # what happened lately, for the live view

    def _say(self, message: str) -> None:
        print(message, flush=True)
        self.events.append(f"{time.strftime('%H:%M:%S')} {message}")

    def log_file(self, service: Service) -> Path:
        return self.log_dir / f"{service.name}.log"

    def _start(self, service: Service) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file(service).open("ab") as log:
            service.process = subprocess.Popen(
                service.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **service.env}, start_new_session=True,
            )  # fmt: skip
        service.started_at = time.monotonic()

    def start_first(self, service: Service, ready: Callable[[], bool], timeout: float) -> None:
        """Start `service` ahead of the others and return once `ready()` (the broker answers)."""
        self.services.append(service)
        self._start(service)
        deadline = time.monotonic() + timeout
        while not ready():
            proc = service.process
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{service.name} exited with code {proc.returncode}; "
                                   f"see {self.log_file(service)}")  # fmt: skip
            if time.monotonic() > deadline:
                self.stop_all()
                raise RuntimeError(f"{service.name} not ready within {timeout:.0f}s; "
                                   f"see {self.log_file(service)}")  # fmt: skip
            time.sleep(0.2)

    def start_all(self) -> None:
        for service in self.services:
            if service.process is not None:
                continue  # started ahead (start_first)
            self._start(service)
            print(f"started {service.name:<10} pid {service.process.pid if service.process else '-'}"
                  f"  log {self.log_file(service)}  {service.url}", flush=True)  # fmt: skip

    def check(self) -> None:
        """Restart what died; a process that keeps dying is restarted less and less often."""
        now = time.monotonic()
        for service in self.services:
            proc = service.process
            if proc is not None and proc.poll() is None:
                if now - service.started_at > 60:
                    service.backoff = 1.0  # it has run a while: the next crash restarts fast
                continue
            if proc is not None:
                service.last_exit = proc.returncode
                self._say(f"{service.name} exited with code {proc.returncode}; restarting in "
                          f"{service.backoff:.0f}s (see {self.log_file(service)})")  # fmt: skip
                service.process = None
                service.next_start = now + service.backoff
                service.backoff = min(service.backoff * 2, RESTART_BACKOFF_MAX)
            elif now >= service.next_start:
                service.restarts += 1
                self._start(service)
                self._say(f"restarted {service.name} (restart #{service.restarts})")

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM tier by tier, highest first: the broker outlives the processes that flush
        to it on the way out. SIGKILL what is still running after `timeout`."""
        for tier in sorted({s.tier for s in self.services}, reverse=True):
            running = [s.process for s in self.services
                       if s.tier == tier and s.process and s.process.poll() is None]  # fmt: skip
            for proc in running:
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for proc in running:
                try:
                    proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    def run_forever(self, on_tick: Callable[[], None] | None = None) -> None:
        """Supervise until SIGINT/SIGTERM; `on_tick` runs every half second (the live view)."""

        def stop(signum: int, frame: object) -> None:
            self._stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.start_all()
        try:
            while not self._stopping:
                self.check()
                if on_tick is not None:
                    on_tick()
                time.sleep(0.5)
        finally:
            print("stopping carelog processes ...", flush=True)
            self.stop_all()
