"""A document over CARELOG_ATTACHMENT_INLINE_MAX_BYTES leaves the event for the blob store;
smaller ones stay inline (processors/attachment_blobs.py)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from processors import attachment_blobs
from processors.hl7v2.adapter import translate_hl7v2
from processors.hl7v2.mapping import map_hl7v2
from processors.validation import resource_issues
from streams.blobstore import LocalBlobStore
from streams.settings import get_settings

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
MDM_PDF = next(CORPUS.glob("hl7v2*/mdm_t02_encapsulated_pdf_v2.5.1.hl7"))


def _attachment(resources: list[dict]) -> dict:
    [document] = [r for r in resources if r["resourceType"] == "DocumentReference"]
    [attachment] = [c["attachment"] for c in document["content"] if "data" in c["attachment"]
                    or "url" in c["attachment"]]  # fmt: skip
    return attachment


def test_a_document_over_the_limit_goes_to_the_blob_store(tmp_path: Path) -> None:
    resources = map_hl7v2(MDM_PDF.read_bytes()).resources
    inline = _attachment(resources)
    raw = base64.b64decode(inline["data"])
    store = LocalBlobStore(tmp_path)
    moved = attachment_blobs.externalized(resources, store, limit=len(raw) - 1)
    attachment = _attachment(moved)
    assert "data" not in attachment
    assert attachment["contentType"] == inline["contentType"] == "application/pdf"
    assert attachment["size"] == len(raw)
    assert attachment["hash"] == base64.b64encode(hashlib.sha1(raw).digest()).decode()
    assert store.get(attachment["url"]) == raw
    assert [i for r in moved for i in resource_issues(r)] == []
    # the other resources are the very same; the input list is not changed
    assert [r for r in moved if r["resourceType"] != "DocumentReference"] == [
        r for r in resources if r["resourceType"] != "DocumentReference"
    ]
    assert _attachment(resources) == inline


def test_a_document_within_the_limit_stays_inline(tmp_path: Path) -> None:
    resources = map_hl7v2(MDM_PDF.read_bytes()).resources
    raw = base64.b64decode(_attachment(resources)["data"])
    assert attachment_blobs.externalized(resources, LocalBlobStore(tmp_path), len(raw)) == (
        resources
    )
    assert list(tmp_path.iterdir()) == []


def test_the_translate_stage_uses_the_configured_store_and_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARELOG_BLOB_URI", tmp_path.as_uri())
    monkeypatch.setenv("CARELOG_ATTACHMENT_INLINE_MAX_BYTES", "16")
    # Settings are read once per process: forget what earlier tests of the session read.
    get_settings.cache_clear()
    attachment_blobs._configured.cache_clear()
    try:
        translation = translate_hl7v2(MDM_PDF.read_bytes(), "event-1")
    finally:
        attachment_blobs._configured.cache_clear()
        monkeypatch.undo()
        get_settings.cache_clear()
    attachment = _attachment([t.resource for t in translation.resources])
    assert attachment["url"].startswith(tmp_path.as_uri())
    assert LocalBlobStore(tmp_path).get(attachment["url"])[:5] == b"%PDF-"
