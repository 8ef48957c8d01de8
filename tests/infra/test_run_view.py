"""The live view of `carelog run` rendered from a given state (no terminal, no broker)."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

from rich.console import Console

from infra.readers import ReaderLag
from infra.run_view import ProcessRow, ViewState, process_rows, rates_between, render
from infra.supervisor import Service
from streams.lag import PartitionLag


def _text(state: ViewState) -> str:
    console = Console(file=StringIO(), width=200, record=True, color_system=None)
    console.print(render(state))
    return console.export_text()


def test_view_shows_health_lag_throughput_urls_and_restarts() -> None:
    state = ViewState(
        bootstrap="127.0.0.1:9092",
        processes=[
            ProcessRow(
                "gateway",
                4242,
                "up",
                0,
                3725.0,
                None,
                "http://127.0.0.1:8080",
                "http://127.0.0.1:8080/metrics",
            ),
            ProcessRow(
                "worker", None, "restarting in 2s", 3, None, -9, "", "http://127.0.0.1:9102/metrics"
            ),
        ],
        readers=[
            ReaderLag(
                "worker",
                "carelog-processors",
                [
                    PartitionLag("carelog.inbound.hl7v2", 0, 10, 0, 1510),
                    PartitionLag("carelog.inbound.hl7v2", 1, None, 0, 7),
                ],
            ),
            ReaderLag(
                "sink", "carelog-lake-sink", [PartitionLag("carelog.fhir.changes", 0, 40, 0, 40)]
            ),
        ],
        rates={"carelog.inbound.hl7v2": 250.0, "carelog.fhir.changes": 1234.5},
        events=["12:00:01 worker exited with code -9; restarting in 2s"],
    )
    text = _text(state)
    assert "kafka 127.0.0.1:9092: reachable" in text
    gateway = next(line for line in text.splitlines() if "gateway" in line)
    for cell in ("4242", "up", "1h02m", "http://127.0.0.1:8080/metrics"):
        assert cell in gateway
    worker = next(
        line
        for line in text.splitlines()
        if line.strip().startswith("│ worker") and "restart" in line
    )
    assert "restarting in 2s" in worker and "3 (last exit -9)" in worker
    assert "1,507" in text  # 1500 + 7 behind on the hl7v2 topic
    assert "carelog-lake-sink" in text
    assert "250.0" in text and "1,234.5" in text
    assert "worker exited with code -9" in text


def test_view_before_the_first_sample_and_with_the_broker_down() -> None:
    text = _text(ViewState("127.0.0.1:1", [], kafka_error="unreachable (timed out); retrying"))
    assert "not read yet" in text and "measuring" in text
    assert "kafka 127.0.0.1:1: unreachable (timed out); retrying" in text


def test_process_rows_from_supervised_services() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        up = Service("mllp", [], "mllp://127.0.0.1:2575", process=proc, started_at=100.0)
        waiting = Service("sink", [], restarts=2, next_start=205.0, last_exit=1)
        rows = process_rows([up, waiting], {"mllp": "http://x/metrics"}, now=200.0)
    finally:
        proc.kill()
        proc.wait()
    assert rows[0] == ProcessRow("mllp", proc.pid, "up", 0, 100.0, None, "mllp://127.0.0.1:2575",
                                 "http://x/metrics")  # fmt: skip
    assert (rows[1].state, rows[1].pid, rows[1].restarts, rows[1].last_exit) == (
        "restarting in 5s", None, 2, 1,
    )  # fmt: skip


def test_rates_from_end_offset_deltas() -> None:
    assert rates_between({"a": 100, "b": 5}, {"a": 300, "b": 5, "c": 9}, 2.0) == {
        "a": 100.0,
        "b": 0.0,
    }
