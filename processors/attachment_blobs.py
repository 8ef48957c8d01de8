"""Big documents out of the events: an attachment whose bytes pass
CARELOG_ATTACHMENT_INLINE_MAX_BYTES is put in the blob store (streams/blobstore.py) and the
resource keeps its url, size and hash instead of `data`, so that no event nears the broker's
message size limit. The HL7 v2 mappers stay pure (they put the bytes inline); this runs after.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import cache
from typing import Any

from streams.blobstore import BlobStore, blob_store_from_settings
from streams.settings import get_settings

JSON = dict[str, Any]


def externalized(resources: list[JSON], store: BlobStore, limit: int) -> list[JSON]:
    """`resources` with every DocumentReference attachment over `limit` bytes in `store`."""
    return [_document(r, store, limit) if r.get("resourceType") == "DocumentReference" else r
            for r in resources]  # fmt: skip


def _document(resource: JSON, store: BlobStore, limit: int) -> JSON:
    contents = resource.get("content") or []
    if not any(_too_big(c.get("attachment", {}), limit) for c in contents):
        return resource
    moved = [
        {**c, "attachment": _stored(c["attachment"], store)}
        if _too_big(c.get("attachment", {}), limit)
        else c
        for c in contents
    ]
    return {**resource, "content": moved}


def _too_big(attachment: JSON, limit: int) -> bool:
    data = attachment.get("data")
    if not isinstance(data, str):
        return False
    size = len(data) * 3 // 4 - (len(data) - len(data.rstrip("=")))  # base64: 3 bytes per 4
    return size > limit


def _stored(attachment: JSON, store: BlobStore) -> JSON:
    try:
        raw = base64.b64decode(attachment["data"], validate=True)
    except binascii.Error:
        return attachment  # not base64: the validator reports it where it stands
    blob = store.put(raw)
    kept = {k: v for k, v in attachment.items() if k != "data"}
    # FHIR R4 Attachment.hash is the SHA-1 of the data, base64; size its length in bytes.
    sha1 = base64.b64encode(hashlib.sha1(raw).digest()).decode()
    return {**kept, "url": blob.uri, "size": blob.size, "hash": sha1}


@cache
def _configured() -> tuple[BlobStore, int]:
    """The blob store and the limit, read once per process from the settings."""
    settings = get_settings()
    return blob_store_from_settings(settings), settings.blobs.attachment_inline_max_bytes


def externalize_big_attachments(resources: list[JSON]) -> list[JSON]:
    """`externalized` with the configured store and CARELOG_ATTACHMENT_INLINE_MAX_BYTES."""
    if not any(r.get("resourceType") == "DocumentReference" for r in resources):
        return resources  # the common case: no store opened, nothing read
    store, limit = _configured()
    return externalized(resources, store, limit)
