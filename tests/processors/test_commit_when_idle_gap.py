"""How soon the worker commits when idle (processors/commit_when_idle.py): as soon as
`min_interval` allows at a light load, and at most every BUSY_SECONDS under a heavy one."""

from __future__ import annotations

from processors.commit_when_idle import BUSY_SECONDS, shortest_gap

IDLE = 0.05  # CARELOG_WORKER_COMMIT_IDLE_SECONDS' default


def test_a_light_load_commits_at_the_idle_interval() -> None:
    # 50 msg/s of the bench's mix: about 110 records a second for each of two workers.
    assert shortest_gap(handled=6, since_commit=IDLE, min_interval=IDLE) == IDLE
    assert shortest_gap(handled=1, since_commit=0.3, min_interval=IDLE) == IDLE


def test_a_heavy_load_commits_at_most_every_busy_seconds() -> None:
    # 500 msg/s: about 1,100 records a second for each of two workers.
    assert shortest_gap(handled=55, since_commit=IDLE, min_interval=IDLE) == BUSY_SECONDS
    assert shortest_gap(handled=165, since_commit=0.15, min_interval=IDLE) == BUSY_SECONDS


def test_a_longer_idle_interval_is_never_shortened() -> None:
    assert shortest_gap(handled=10_000, since_commit=1.0, min_interval=2.0) == 2.0
    assert shortest_gap(handled=1, since_commit=1.0, min_interval=2.0) == 2.0


def test_the_load_is_judged_by_its_rate_not_by_the_wait() -> None:
    """The same flow of records gives the same answer whenever the task looks."""
    for since in (0.05, 0.1, 0.19):
        assert shortest_gap(int(1_100 * since), since, IDLE) == BUSY_SECONDS
        assert shortest_gap(int(110 * since), since, IDLE) == IDLE
