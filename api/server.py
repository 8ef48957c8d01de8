"""Serving the gateway with uvicorn (httptools and uvloop when installed), in one process or
several sharing the port.

With several (CARELOG_GATEWAY_WORKERS, `--workers`; by default one per CPU core, at most
MAX_AUTO_WORKERS), what a process keeps for itself is made right for the whole gateway:

- rate limits: each process enforces 1/N of the rate and burst (api/app.py), so a client
  never gets more than the configured limit across processes;
- metrics: every process writes its counters to files in a directory of this gateway run
  (prometheus_client's multiprocess mode), and /metrics on any process sums them all;
- a process lives only as long as the one that started it (Linux: PR_SET_PDEATHSIG), so a
  SIGKILLed gateway leaves no worker behind holding the port;
- everything else is per process and needs nothing shared: the producer (idempotent, its
  own), the token cache, read-your-writes waits (they poll the FHIR store every process
  reads), readiness, the request id prefix (random per process).
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import shutil
import signal
import sys
from pathlib import Path

import uvicorn

from api.json_logs import configure
from streams.settings import Settings

MAX_AUTO_WORKERS = 4
WORKER_HEALTHCHECK_SECONDS = 60
_SUPERVISOR_PID = "CARELOG_GATEWAY_SUPERVISOR_PID"
_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
_PR_SET_PDEATHSIG = 1


def worker_count(settings: Settings, workers: int | None = None) -> int:
    """Processes to serve with: `workers` if given, else the setting; 0 means one per core
    this process may use (its CPU affinity and its cgroup's CPU quota, as in a container
    with a CPU limit), at most MAX_AUTO_WORKERS."""
    wanted = workers if workers is not None else settings.gateway.workers
    if wanted > 0:
        return wanted
    cores = len(os.sched_getaffinity(0))
    quota = cgroup_cpu_quota()
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, min(cores, MAX_AUTO_WORKERS))


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs this process's cgroup may use (v2 cpu.max, v1 cfs quota); None when unlimited."""
    try:
        quota, _, period = (root / "cpu.max").read_text().strip().partition(" ")
        return None if quota == "max" else int(quota) / int(period or 100_000)
    except (OSError, ValueError):
        pass
    try:
        v1_quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        v1_period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if v1_quota <= 0 or v1_period <= 0 else v1_quota / v1_period


def serve(
    settings: Settings, host: str | None = None, port: int | None = None, workers: int | None = None
) -> None:
    configure()
    count = worker_count(settings, workers)
    log_config = None  # keep our JSON handler; uvicorn's own access log is replaced by ours
    options = {
        "host": host or settings.gateway.host,
        "port": port or settings.gateway.port,
        "log_config": log_config,
        "access_log": False,
        "http": "auto",  # httptools if installed
        "loop": "auto",  # uvloop if installed
        # Client addresses key the rate limits: never take them from X-Forwarded-For.
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
        # How long a worker may take to answer the supervisor's ping before it is killed
        # and replaced. uvicorn's 5 s is shorter than a worker's start (imports) on a
        # loaded machine: workers were then killed and restarted for ever.
        "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
    }
    logging.getLogger("carelog.gateway").info(
        "gateway starting", extra={"host": options["host"], "port": options["port"],
                                   "workers": count, "kafka": settings.kafka.bootstrap})  # fmt: skip
    if count == 1:
        from api.app import create_app

        alone = settings.amended(gateway={"workers": 1})  # all of the rate limits
        uvicorn.run(create_app(alone), **options)  # type: ignore[arg-type]
        return
    # The worker processes read their settings from the environment: tell them how many
    # they are (their share of the rate limits) and where the shared metrics go.
    metrics_dir = _fresh_metrics_dir(settings)
    os.environ.update({"CARELOG_GATEWAY_WORKERS": str(count), _MULTIPROC_DIR: str(metrics_dir),
                       _SUPERVISOR_PID: str(os.getpid())})  # fmt: skip
    try:
        uvicorn.run("api.server:app_from_environment", factory=True, workers=count, **options)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _fresh_metrics_dir(settings: Settings) -> Path:
    """var/gateway-metrics/<pid>, empty; those of gateways that died without clearing
    theirs (SIGKILL) are removed."""
    root = settings.var_dir / "gateway-metrics"
    if root.is_dir():
        for old in root.iterdir():
            if not old.name.isdigit() or not Path(f"/proc/{old.name}").exists():
                shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir(parents=True)
    return mine


def app_from_environment() -> object:
    """Factory for worker processes: each reads the settings from the environment."""
    _die_with_supervisor()
    from api.app import create_app

    configure()
    return create_app()


def _die_with_supervisor() -> None:
    """Ask Linux to SIGKILL this worker when the process that started it dies (uvicorn's
    workers otherwise outlive a SIGKILLed gateway and keep serving on its port)."""
    supervisor = os.environ.get(_SUPERVISOR_PID)
    if supervisor is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logging.getLogger("carelog.gateway").warning(
            "could not tie the worker's life to the gateway's (prctl errno %d)", ctypes.get_errno()
        )
    if os.getppid() != int(supervisor):  # it died before we asked
        os.kill(os.getpid(), signal.SIGKILL)
