"""One log format for every carelog process: one JSON object per line on stderr.

Each line has the keys `time` (UTC, ISO 8601, milliseconds), `level` (lower case), `logger`
and `message`, then the fields passed as `extra=`, and `error` (the traceback) when an
exception is logged. The gateway and the MLLP listener write them in batches
(api/json_logs.py); the worker (Faust's logging included), the FHIR store projection and the
Delta sink line by line.

Callers log identifiers (sender, control id, event id, sizes), never message content: HL7
and DICOM payloads carry patient data, so they stay out of logs.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                body[key] = value
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return orjson.dumps(body, default=str).decode()


def configure(level: str = "INFO", handler: logging.Handler | None = None) -> None:
    """Send every log record of this process to `handler` (default: stderr, a line at a
    time) as JSON lines, replacing the root logger's handlers. Call it first in a process's
    entry point: handlers added before it (metrics' error counters) would be dropped."""
    handler = handler or logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old.formatter, JsonFormatter):
            old.close()  # a batching handler writes what it holds and stops its thread
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The JSON lines carry none of the caller's file and line, thread or process: skip
    # working them out for every record (the logging module's documented switches; a
    # frame walk and two look-ups on each request's access log line otherwise).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def faust_logging_config() -> dict[str, Any]:
    """Faust's `logging_config` app option: its worker sets up logging itself at start (the
    level from `--loglevel`), and this makes its one handler ("default", merged into its own
    configuration) a JSON-lines one on stderr."""
    return {
        "merge": True,
        "formatters": {"json": {"()": f"{__name__}.JsonFormatter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "json",
            }
        },
    }
