"""One log format for every carelog process: JSON lines with the same keys, whether written
by streams.json_logs.configure (projection, sink, worker before Faust starts), by the
gateway's batching handler, or by Faust's own logging set up with faust_logging_config."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from mode.utils.logging import setup_logging

from api.json_logs import BatchedLineHandler
from api.json_logs import configure as configure_gateway
from streams.faust_app import create_app, keep_log_handlers
from streams.json_logs import JsonFormatter, configure, faust_logging_config
from streams.settings import Settings

KEYS = ["time", "level", "logger", "message"]
# librdkafka (the C library under confluent-kafka) writes its own lines straight to stderr.
LIBRDKAFKA = re.compile(r"^%\d\|")


def parse_log_line(line: str) -> dict[str, object]:
    """A carelog log line: a JSON object whose first keys are KEYS (used on real logs too)."""
    body = orjson.loads(line)
    assert isinstance(body, dict), line
    assert list(body)[: len(KEYS)] == KEYS, line
    return body


@pytest.fixture
def restore_root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging._srcfile, logging.logThreads,
             logging.logProcesses, logging.logMultiprocessing)  # fmt: skip
    yield root
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    (root.handlers[:], level, logging._srcfile, logging.logThreads, logging.logProcesses,
     logging.logMultiprocessing) = saved  # fmt: skip
    root.setLevel(level)


def test_a_record_is_one_json_line_with_its_extra_fields_and_its_error() -> None:
    try:
        raise ValueError("bad segment")
    except ValueError:
        record = logging.getLogger("carelog.x").makeRecord(
            "carelog.x", logging.ERROR, __file__, 1, "failed %s", ("MSH",), None,
            extra={"sender": "NWH", "size": 12},
        )  # fmt: skip
        record.exc_info = __import__("sys").exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    body = parse_log_line(line)
    assert body["level"] == "error" and body["logger"] == "carelog.x"
    assert body["message"] == "failed MSH"
    assert (body["sender"], body["size"]) == ("NWH", 12)
    assert "ValueError: bad segment" in str(body["error"])
    assert str(body["time"]).endswith("+00:00")


def test_every_process_kind_writes_the_same_keys(
    restore_root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    lines: list[str] = []

    configure("info")  # projection, sink, worker before Faust
    logging.getLogger("carelog.projection").info("applied %d events", 3)
    lines += capsys.readouterr().err.splitlines()

    configure_gateway()  # gateway, MLLP: batched
    gateway = restore_root.handlers[0]
    assert isinstance(gateway, BatchedLineHandler)
    gateway.stream = out = io.StringIO()
    logging.getLogger("carelog.gateway").info("request", extra={"status": 200})
    gateway.flush()
    lines += out.getvalue().splitlines()

    setup_logging(loglevel="info", logging_config=faust_logging_config())  # as Faust's worker
    logging.getLogger("faust.worker").info("[^Worker]: Starting...")
    lines += capsys.readouterr().err.splitlines()

    bodies = [parse_log_line(line) for line in lines]
    assert [b["logger"] for b in bodies] == [
        "carelog.projection",
        "carelog.gateway",
        "faust.worker",
    ]
    assert [b["message"] for b in bodies] == [
        "applied 3 events",
        "request",
        "[^Worker]: Starting...",
    ]
    assert {b["level"] for b in bodies} == {"info"}


def test_the_worker_keeps_its_other_log_handlers_when_faust_sets_up_logging(
    restore_root: logging.Logger, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    app = create_app("test-logging", Settings(var_dir=tmp_path))
    configure("info")
    counted: list[str] = []

    class Count(logging.Handler):  # as serve_metrics' count of warnings and errors
        def emit(self, record: logging.LogRecord) -> None:
            counted.append(record.levelname)

    restore_root.addHandler(Count(logging.WARNING))
    keep_log_handlers(app)
    # What Faust's worker does at start (mode.Worker._setup_logging).
    setup_logging(loglevel="info", logging_config=dict(app.conf.logging_config),
                  loghandlers=app.conf.loghandlers)  # fmt: skip
    logging.getLogger("faust.worker").warning("slow")
    assert counted == ["WARNING"]
    assert parse_log_line(capsys.readouterr().err.splitlines()[-1])["message"] == "slow"
