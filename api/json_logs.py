"""The gateway's and the MLLP listener's JSON logs (streams/json_logs.py), written in batches.

Lines are written in batches (BatchedLineHandler): a write and a flush per line cost the
gateway about a tenth of a request. A line waits at most FLUSH_SECONDS; a warning or an
error is written at once, after the lines before it; all are written at exit. A process
killed with SIGKILL loses at most the last FLUSH_SECONDS of lines.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

from streams import json_logs

FLUSH_SECONDS = 0.2
BATCH_CHARS = 64 * 1024


class BatchedLineHandler(logging.Handler):
    """One formatted record per line on `stream`, written in batches: when FLUSH_SECONDS
    have passed, when BATCH_CHARS wait, at once for WARNING and above, and on flush/close
    (logging.shutdown at exit)."""

    def __init__(self, stream: TextIO, interval: float = FLUSH_SECONDS) -> None:
        super().__init__()
        self.stream = stream
        self._lines: list[str] = []
        self._chars = 0
        self._stop = threading.Event()
        self._interval = interval
        threading.Thread(target=self._flush_every_interval, name="log-flush", daemon=True).start()

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        self._chars += len(line)
        if record.levelno >= logging.WARNING or self._chars >= BATCH_CHARS:
            self._write()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # Handler.__init__ made it
            self._write()

    def close(self) -> None:
        self._stop.set()
        self.flush()
        super().close()

    def _write(self) -> None:
        if not self._lines:
            return
        text = "\n".join(self._lines) + "\n"
        self._lines.clear()
        self._chars = 0
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nowhere left to log to
            pass

    def _flush_every_interval(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()


def configure(level: str = "INFO") -> None:
    """Send every log record of this process to stderr as JSON lines, in batches."""
    json_logs.configure(level, BatchedLineHandler(sys.stderr))
