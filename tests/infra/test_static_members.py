"""`carelog run` gives its worker and sink static member ids: stable for a var dir (a
restart takes the partitions back at once), distinct between the two and between var dirs,
and a value the operator set wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.commands import static_members
from streams.settings import Settings

VARIABLES = ("CARELOG_WORKER_INSTANCE_ID", "CARELOG_LAKE_INSTANCE_ID")


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither variable set, and both as they were after the test (static_members writes
    os.environ; a test's ids left there would reach every process started later)."""
    for variable in VARIABLES:
        monkeypatch.setenv(variable, "recorded")
        monkeypatch.delenv(variable)


def ids_for(var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    static_members(Settings(var_dir=var_dir))
    worker, sink = (Settings().worker.instance_id, Settings().lake.instance_id)
    assert worker is not None and sink is not None
    return worker, sink


def test_ids_are_stable_per_var_dir_and_distinct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, sink = ids_for(tmp_path / "a", monkeypatch)
    assert worker != sink
    assert ids_for(tmp_path / "a", monkeypatch) == (worker, sink)
    other = ids_for(tmp_path / "b", monkeypatch)
    assert not {worker, sink} & set(other)


def test_an_id_the_operator_set_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARELOG_WORKER_INSTANCE_ID", "pod-7")
    static_members(Settings(var_dir=tmp_path))
    assert Settings().worker.instance_id == "pod-7"
    assert Settings().lake.instance_id not in (None, "pod-7")
