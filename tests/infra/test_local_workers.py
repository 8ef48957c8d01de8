"""`carelog run` starts CARELOG_WORKER_PROCESSES workers: each with a name, metrics port and
static member id of its own, the first with those it would have alone."""

from __future__ import annotations

from infra.local_workers import local_workers


def test_one_worker_keeps_its_name_port_and_member_id() -> None:
    (worker,) = local_workers(1, 9102, "host-1a2b3c4d-worker")
    assert (worker.name, worker.metrics_port, worker.instance_id) == (
        "worker", 9102, "host-1a2b3c4d-worker")  # fmt: skip
    assert worker.env == {
        "CARELOG_WORKER_METRICS_PORT": "9102",
        "CARELOG_WORKER_INSTANCE_ID": "host-1a2b3c4d-worker",
    }


def test_more_workers_differ_in_name_port_and_member_id() -> None:
    workers = local_workers(3, 9102, "pod-7")
    assert [w.name for w in workers] == ["worker", "worker-2", "worker-3"]
    assert [w.metrics_port for w in workers] == [9102, 9112, 9122]
    assert [w.instance_id for w in workers] == ["pod-7", "pod-7-2", "pod-7-3"]


def test_metrics_off_and_no_member_id_stay_so() -> None:
    workers = local_workers(2, 0, None)
    assert [w.metrics_port for w in workers] == [0, 0]
    assert all("CARELOG_WORKER_INSTANCE_ID" not in w.env for w in workers)
