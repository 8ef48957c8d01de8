"""The workers `carelog run` starts on this machine (CARELOG_WORKER_PROCESSES): what sets each
apart from the others, its name, metrics port and static member id."""

from __future__ import annotations

from dataclasses import dataclass

METRICS_PORT_STEP = 10  # 9102, 9112, 9122: clear of the other processes' 9101-9104


@dataclass(frozen=True)
class LocalWorker:
    name: str  # its service and log file: worker, worker-2, worker-3, ...
    metrics_port: int  # 0: off
    instance_id: str | None  # its static member id in the group, when the first one has one

    @property
    def env(self) -> dict[str, str]:
        """The settings this worker's process gets beyond the machine's."""
        env = {"CARELOG_WORKER_METRICS_PORT": str(self.metrics_port)}
        if self.instance_id is not None:
            env["CARELOG_WORKER_INSTANCE_ID"] = self.instance_id
        return env


def local_workers(processes: int, metrics_port: int, instance_id: str | None) -> list[LocalWorker]:
    """`processes` workers; the first keeps the port and member id it would have alone."""
    workers = []
    for n in range(1, processes + 1):
        suffix = "" if n == 1 else f"-{n}"
        port = metrics_port + METRICS_PORT_STEP * (n - 1) if metrics_port else 0
        member = None if instance_id is None else instance_id + suffix
        workers.append(LocalWorker(f"worker{suffix}", port, member))
    return workers
