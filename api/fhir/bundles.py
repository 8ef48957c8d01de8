"""searchset and history Bundles, assembled from the stored JSON without re-parsing it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import urlencode

import orjson
from starlette.requests import Request

from api.fhir.http import etag
from projections.fhir_store import StoredResource


def base_url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/fhir"


def page_url(url: str, params: Sequence[tuple[str, str]], offset: int | None = None) -> str:
    """`url?params` with _offset replaced (or dropped when `offset` is None)."""
    kept = [(k, v) for k, v in params if k != "_offset"]
    if offset:
        kept.append(("_offset", str(offset)))
    return f"{url}?{urlencode(kept)}" if kept else url


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _head(kind: str, total: int | None, links: list[tuple[str, str]]) -> bytes:
    head: dict[str, object] = {"resourceType": "Bundle", "type": kind,
                               "meta": {"lastUpdated": _now()}}  # fmt: skip
    if total is not None:
        head["total"] = total
    head["link"] = [{"relation": rel, "url": url} for rel, url in links]
    return orjson.dumps(head)[:-1]  # open: entries follow


def searchset(base: str, matches: Sequence[StoredResource], included: Sequence[StoredResource],
              total: int | None, links: list[tuple[str, str]]) -> bytes:  # fmt: skip
    parts = []
    for mode, items in (("match", matches), ("include", included)):
        tail = b',"search":{"mode":"' + mode.encode() + b'"}}'
        for r in items:
            parts.append(b'{"fullUrl":' + orjson.dumps(f"{base}/{r.key}") + b',"resource":'
                         + r.json.encode() + tail)  # fmt: skip
    return _head("searchset", total, links) + b',"entry":[' + b",".join(parts) + b"]}"


def history(base: str, versions: Sequence[StoredResource], total: int,
            links: list[tuple[str, str]]) -> bytes:  # fmt: skip
    parts = []
    for r in versions:
        first = r.version == 1
        request = {"method": "DELETE" if r.deleted else ("POST" if first else "PUT"),
                   "url": r.resource_type if first and not r.deleted else r.key}  # fmt: skip
        response = {"status": "204" if r.deleted else ("201" if first else "200"),
                    "etag": etag(r.version), "lastModified": r.last_updated.isoformat()}  # fmt: skip
        entry = b'{"fullUrl":' + orjson.dumps(f"{base}/{r.key}")
        if not r.deleted:
            entry += b',"resource":' + r.json.encode()
        entry += (
            b',"request":' + orjson.dumps(request) + b',"response":' + orjson.dumps(response) + b"}"
        )
        parts.append(entry)
    return _head("history", total, links) + b',"entry":[' + b",".join(parts) + b"]}"
