"""`carelog status` against the real broker: lag per reader and topic, last errors, and a
clear failure when no broker answers."""

from __future__ import annotations

import socket
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from infra.cli import main
from infra.log_errors import last_error
from infra.status import EXIT_BROKER_DOWN, print_status
from streams.admin import admin_client
from streams.lag import partitions_of, watermarks
from streams.settings import Settings
from streams.settings.kafka import KafkaSettings
from streams.topics import FHIR_CHANGES
from tests.kafka_fixture import free_port
from tests.processors.worker_harness import read_all

pytestmark = pytest.mark.kafka

TRACEBACK = """\
2026-03-02 10:00:00 INFO projections.lake.sink: assigned {0: 0}
Traceback (most recent call last):
  File "sink.py", line 1, in run
deltalake.exceptions.CommitFailedError: silver/patient: 5 commit conflicts in a row
2026-03-02 10:00:05 INFO projections.lake.sink: lake var/lake: 14 tables
"""


def test_status_prints_each_readers_lag_and_each_processes_last_error(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    group = f"test-status-sink-{uuid.uuid4().hex[:8]}"
    settings = kafka_settings.amended(lake={"group_id": group, "metrics_port": 0}, var_dir=tmp_path)
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(FHIR_CHANGES, 0, 0)], asynchronous=False)
    consumer.close()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "sink.log").write_text(TRACEBACK)
    (logs / "gateway.log").write_text(
        '{"time": "t", "level": "error", "logger": "carelog.ingest", "message": "delivery failed"}\n'
        '{"time": "t", "level": "info", "logger": "carelog.access", "message": "POST /hl7v2 200"}\n'
    )

    admin = admin_client(settings)

    def offsets() -> tuple[int, int]:  # (partitions, offsets taken on carelog.fhir.changes)
        ends = watermarks(admin, partitions_of(admin, [FHIR_CHANGES]))
        return len(ends), sum(high - low for low, high in ends.values())

    # The lag lies between the committed records (status counts records where the gap is
    # small, and transaction markers take offsets but are no records) and the offsets.
    # Other tests' workers may still append to the shared topic: bracket the reading.
    records_before = len(read_all(settings, FHIR_CHANGES))
    partitions, _ = offsets()
    out = StringIO()
    assert print_status(settings, out) == 0
    text = out.getvalue()
    _, offsets_after = offsets()

    assert f"kafka {settings.kafka.bootstrap}: reachable" in text
    sink_rows = [line.split() for line in text.splitlines() if line.startswith("sink ")]
    # committed 0 on partition 0, nothing elsewhere: the whole topic is behind
    [row] = [r for r in sink_rows if r[2] == FHIR_CHANGES]
    assert row[:4] == ["sink", group, FHIR_CHANGES, str(partitions)]
    assert records_before <= int(row[4]) <= offsets_after
    assert any(
        line.startswith("worker ") and "carelog-processors" in line for line in text.splitlines()
    )
    assert any(
        line.startswith("projection ") and "(store file" in line for line in text.splitlines()
    )
    sink_process = next(
        line for line in text.splitlines() if line.startswith("sink ") and "off" in line
    )
    assert "CommitFailedError: silver/patient: 5 commit conflicts in a row" in sink_process
    assert "delivery failed" in next(
        line for line in text.splitlines() if line.startswith("gateway ")
    )


def test_status_exits_non_zero_with_a_clear_message_when_no_broker_answers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    settings = Settings(var_dir=tmp_path, kafka=KafkaSettings(cluster=f"127.0.0.1:{free_port()}"))
    assert print_status(settings, timeout=1.0) == EXIT_BROKER_DOWN
    err = capsys.readouterr().err
    assert "no Kafka broker answered at 127.0.0.1:" in err
    assert "carelog kafka up" in err and "CARELOG_KAFKA_BOOTSTRAP" in err


def test_carelog_status_command(
    kafka_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "consumer lag" in out and "carelog-processors" in out and "carelog-lake-sink" in out


def test_last_error_is_none_without_errors_or_log(tmp_path: Path) -> None:
    (tmp_path / "mllp.log").write_text('{"level": "info", "message": "listening"}\n')
    assert last_error(tmp_path / "mllp.log") is None
    assert last_error(tmp_path / "missing.log") is None


def test_probe_tells_a_slow_endpoint_from_one_that_is_down() -> None:
    from infra.status import probe

    assert probe(f"http://127.0.0.1:{free_port()}/metrics", timeout=2.0) == "down"  # refused
    with socket.socket() as silent:  # accepts connections (the backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        assert probe(f"http://127.0.0.1:{port}/metrics", timeout=0.5) == "slow"


def test_status_reports_a_running_process_as_up_while_its_lag_read_is_slow(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    """The probe used to time out at 0.5 s on a scrape that read the lag itself."""
    from streams.lag import PartitionLag
    from streams.process_metrics import serve_metrics

    def slow_lag() -> list[PartitionLag]:
        time.sleep(1.5)  # reading the lag of a busy broker
        return []

    port = free_port()
    settings = kafka_settings.amended(
        worker={"metrics_port": port},
        mllp={"metrics_port": 0},
        store={"metrics_port": 0},
        lake={"metrics_port": 0},
        gateway={"port": free_port()},
        var_dir=tmp_path,
    )
    assert serve_metrics("slowworker", settings, port, slow_lag)
    out = StringIO()
    assert print_status(settings, out) == 0
    rows = {line.split()[0]: line.split()[1] for line in out.getvalue().split("processes")[1]
            .splitlines()[1:] if line.strip()}  # fmt: skip
    assert rows["worker"] == "up"
    assert rows["gateway"] == "down"  # nothing listens there
    assert rows["sink"] == "off"
