"""The bytes of an AuditEvent's record on carelog.audit, built without the generic encoders.

Every audited read appends one record, so its cost is part of every read's: the generic
path (a ResourceChanged object, `with_meta` and `content_of` copies, two canonical JSON
dumps, fastavro over a dict of the record) took about half of a read's gateway CPU. Here
the AuditEvent is dumped once (sorted keys, no meta: that text is what the content hash
covers), its meta is spliced in after "id" (the next key in sorted order: "meta" sorts
between "id" and "outcome", and an AuditEvent has no other key between them), and the Avro
datum of ResourceChanged is laid out by hand: constant fields are encoded once, at import.

The result is byte for byte what `encode_event(audit_change(...))` gives with sealing off,
and with sealing on (streams/privacy/) the same record once opened, sealed with the same key
(the AuditEvent names the patient read: their key), tests/api/test_audit_record.py; a change
of the ResourceChanged schema fails that test.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.catalogue import default_catalogue
from schemas.codec import MARKER
from streams.privacy.envelope import seal_change
from streams.topics import AUDIT

MAPPING_VERSION = "carelog-audit/1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_FIELDS = (
    "event_id", "resource_type", "resource_id", "version", "operation", "resource",
    "content_hash", "inbound_event_id", "inbound_topic", "inbound_partition", "inbound_offset",
    "business_time", "recorded_at", "mapping_version", "warnings", "key_id", "sealed",
)  # fmt: skip


def _long(n: int) -> bytes:
    """Avro int/long: zigzag, then base-128 varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _string(text: str) -> bytes:
    data = text.encode()
    return _long(len(data)) + data


def _check_layout() -> bytes:
    """The single-object header of the current ResourceChanged, once its fields are the
    ones laid out below (in this order)."""
    schema = default_catalogue().current("ResourceChanged")
    names = tuple(f["name"] for f in schema.parsed["fields"])
    if names != _FIELDS:
        raise RuntimeError(f"ResourceChanged's fields changed ({names}): update audit_record.py")
    return MARKER + schema.fingerprint


_HEADER = _check_layout()
_AUDIT_EVENT = _string("AuditEvent")
# version 1, operation upsert (symbol 0), resource: union branch 1 (string), or branch 0
# (null) when it is sealed
_VERSION_OPERATION_RESOURCE = _long(1) + _long(0) + _long(1)
_VERSION_OPERATION_SEALED = _long(1) + _long(0) + _long(0)
# inbound_topic, inbound_partition -1, inbound_offset -1, business_time: union branch 1 (long)
_INBOUND_LINEAGE = _string(AUDIT) + _long(-1) + _long(-1) + _long(1)
# mapping_version; warnings, key_id, sealed: union branch 0 (null)
_TAIL = _string(MAPPING_VERSION) + _long(0) + _long(0) + _long(0)
# mapping_version; warnings null; then key_id and sealed follow, union branch 1 each
_SEALED_TAIL = _string(MAPPING_VERSION) + _long(0) + _long(1)


def recorded_now() -> tuple[datetime, int]:
    """This instant as the record keeps it: a datetime and its µs since the epoch."""
    now = datetime.now(UTC)
    delta = now - _EPOCH
    return now, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def audit_record(event: dict[str, Any], access_id: str, recorded_at: datetime, at_us: int) -> bytes:
    """The encoded ResourceChanged keeping `event` as AuditEvent/<access_id>, version 1.

    `at_us` is `recorded_at` in µs since the epoch (recorded_now gives both)."""
    content = orjson.dumps({**event, "id": access_id}, option=orjson.OPT_SORT_KEYS)
    stamp = recorded_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    member = b'"id":"' + access_id.encode() + b'"'
    at = content.index(member) + len(member)  # orjson escapes quotes inside strings
    stored = (content[:at] + b',"meta":{"lastUpdated":"' + stamp.encode()
              + b'","versionId":"1"}' + content[at:])  # fmt: skip
    ident = _string(access_id)
    at_micros = _long(at_us)
    digest = _string(hashlib.sha256(content).hexdigest())
    sealed = seal_change(access_id, "AuditEvent", access_id, stored.decode())
    if sealed is None:
        return b"".join((
            _HEADER, ident, _AUDIT_EVENT, ident, _VERSION_OPERATION_RESOURCE,
            _long(len(stored)), stored, digest, ident,
            _INBOUND_LINEAGE, at_micros, at_micros, _TAIL,
        ))  # fmt: skip
    key_id, box = sealed
    return b"".join((
        _HEADER, ident, _AUDIT_EVENT, ident, _VERSION_OPERATION_SEALED, digest, ident,
        _INBOUND_LINEAGE, at_micros, at_micros, _SEALED_TAIL, _string(key_id),
        _long(1), _long(len(box)), box,
    ))  # fmt: skip
