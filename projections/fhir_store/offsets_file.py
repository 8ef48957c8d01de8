"""What a FHIR store has applied, read without opening the store (no search registry, no
writer lock): for `carelog status`, the live view and the projection's metrics."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def applied_offsets(path: Path) -> dict[tuple[str, int], int]:
    """{(topic, partition): next offset to apply}; empty when there is no store yet."""
    if not path.exists():
        return {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
    try:
        rows = conn.execute("SELECT topic, partition, offset FROM offsets").fetchall()
    except sqlite3.OperationalError:  # created but not initialised yet
        return {}
    finally:
        conn.close()
    return {(str(t), int(p)): int(o) + 1 for t, p, o in rows}
