"""The last error a process wrote to its log (var/logs/<process>.log, kept by `carelog run`).

Processes log JSON lines ("level": "error", streams/json_logs.py); a log may still hold
text lines (librdkafka's, or an older carelog's: ERROR, CRITICAL) and tracebacks written
outside logging, whose last line names the exception. Only the
tail of the file is read: a long-running process's log can be large.
"""

from __future__ import annotations

import re
from pathlib import Path

TAIL_BYTES = 1_000_000
MAX_CHARS = 240

_ERROR_LINE = re.compile(
    r'"level":\s*"(error|critical)"'  # JSON logs
    r"|\b(ERROR|CRITICAL)\b"  # text logs
    r"|^[A-Za-z_][\w.]*(Error|Exception)(:|$)"  # the last line of a traceback
)


def last_error(log_file: Path, tail_bytes: int = TAIL_BYTES) -> str | None:
    """The last error line of `log_file` (shortened), or None when it has none or is absent."""
    try:
        with log_file.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - tail_bytes))
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and _ERROR_LINE.search(line):
            return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 1] + "…"
    return None
