"""Canonical JSON and content hashes of FHIR resources.

The hash covers the content without meta.versionId and meta.lastUpdated, so the same content
arriving again hashes the same and emits nothing.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_VOLATILE_META = ("versionId", "lastUpdated")


def canonical_json(resource: dict[str, Any]) -> str:
    """Keys sorted, no insignificant whitespace: the same resource is always the same text."""
    return orjson.dumps(resource, option=orjson.OPT_SORT_KEYS).decode()


def content_of(resource: dict[str, Any]) -> dict[str, Any]:
    meta = {k: v for k, v in resource.get("meta", {}).items() if k not in _VOLATILE_META}
    body = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        body["meta"] = meta
    return body


def content_hash(resource: dict[str, Any]) -> str:
    content = content_of(resource) if "meta" in resource else resource  # no meta: no copy
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()
