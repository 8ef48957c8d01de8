"""What a shadow would change in the live store: per resource type, resources added, changed
and removed, with sample field-level differences (JSON paths, old -> new). Content is
compared without meta.versionId and meta.lastUpdated (processors/canonical.py).

The gateway's audit trail (AuditEvent, from carelog.audit) is not replayed, so it is left
out unless asked for.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from processors.canonical import content_of
from projections.fhir_store.schema import connect

_CURRENT = (
    "SELECT r.type, r.id, v.json FROM resources r "
    "JOIN versions v ON v.rid = r.rid AND v.version = r.version "
    "WHERE r.deleted = 0 ORDER BY r.type, r.id"
)
_MISSING = object()
FieldChange = tuple[str, Any, Any]  # path, old (live), new (shadow)


@dataclass
class TypeDiff:
    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class StoreDiff:
    types: dict[str, TypeDiff] = field(default_factory=dict)
    differing: dict[str, str] = field(default_factory=dict)  # ResourceType/id -> kind

    def to_json(self) -> dict[str, Any]:
        return {
            rtype: {"added": d.added, "changed": d.changed, "removed": d.removed,
                    "unchanged": d.unchanged, "samples": d.samples}
            for rtype, d in sorted(self.types.items())
        }  # fmt: skip


def field_changes(old: Any, new: Any, path: str = "") -> Iterator[FieldChange]:
    """Every leaf where `old` and `new` differ, by JSON path (lists compared by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for name in sorted(old.keys() | new.keys()):
            where = f"{path}.{name}" if path else name
            yield from field_changes(old.get(name, _MISSING), new.get(name, _MISSING), where)
    elif isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            yield from field_changes(
                old[i] if i < len(old) else _MISSING, new[i] if i < len(new) else _MISSING,
                f"{path}[{i}]",
            )  # fmt: skip
    elif old != new:
        yield path, None if old is _MISSING else old, None if new is _MISSING else new


def _current(conn: sqlite3.Connection) -> Iterator[tuple[str, str, str]]:
    yield from conn.execute(_CURRENT)


def diff_stores(
    live_path: Path,
    shadow_path: Path,
    *,
    samples: int = 3,
    max_fields: int = 10,
    skip_types: frozenset[str] = frozenset({"AuditEvent"}),
) -> StoreDiff:
    """Compare the current resources of two stores, merging both in (type, id) order."""
    live, shadow = connect(live_path, readonly=True), connect(shadow_path, readonly=True)
    result = StoreDiff()
    try:
        left, right = _current(live), _current(shadow)
        a, b = next(left, None), next(right, None)
        while a is not None or b is not None:
            if b is None or (a is not None and a[:2] < b[:2]):
                assert a is not None
                _count(result, a[0], "removed", a[1], samples, skip_types)
                a = next(left, None)
            elif a is None or b[:2] < a[:2]:
                _count(result, b[0], "added", b[1], samples, skip_types)
                b = next(right, None)
            else:
                old, new = content_of(orjson.loads(a[2])), content_of(orjson.loads(b[2]))
                if old == new:
                    _count(result, a[0], "unchanged", a[1], 0, skip_types)
                else:
                    fields = list(field_changes(old, new))[:max_fields]
                    _count(result, a[0], "changed", a[1], samples, skip_types, fields)
                a, b = next(left, None), next(right, None)
    finally:
        live.close()
        shadow.close()
    return result


def _count(
    result: StoreDiff,
    rtype: str,
    kind: str,
    rid: str,
    samples: int,
    skip: frozenset[str],
    fields: list[FieldChange] | None = None,
) -> None:
    if rtype in skip:
        return
    found = result.types.setdefault(rtype, TypeDiff())
    setattr(found, kind, getattr(found, kind) + 1)
    if kind != "unchanged":
        result.differing[f"{rtype}/{rid}"] = kind
    if kind != "unchanged" and sum(s["kind"] == kind for s in found.samples) < samples:
        sample: dict[str, Any] = {"kind": kind, "resource": f"{rtype}/{rid}"}
        if fields is not None:
            sample["fields"] = [{"path": p, "old": o, "new": n} for p, o, n in fields]
        found.samples.append(sample)
