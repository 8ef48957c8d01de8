"""The content-addressed blob store: local folder backend, and the scheme registry."""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from streams.blobstore import (
    BlobStoreError,
    LocalBlobStore,
    StoredBlob,
    blob_store_from_settings,
    open_blob_store,
    register_scheme,
)
from streams.settings import Settings


def test_put_is_content_addressed_and_readable(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    blob = store.put(data)
    assert blob == StoredBlob(
        (tmp_path / "sha256" / digest[:2] / digest).as_uri(), digest, len(data)
    )
    assert store.get(blob.uri) == data
    assert [p.name for p in (tmp_path / "sha256" / digest[:2]).iterdir()] == [
        digest
    ]  # no temp left


def test_put_is_idempotent_and_safe_under_concurrency(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"same bytes" * 10_000
    with ThreadPoolExecutor(8) as pool:
        blobs = list(pool.map(lambda _: store.put(data), range(32)))
    assert len(set(blobs)) == 1
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == data


def test_a_torn_file_is_rewritten_and_a_corrupted_one_is_detected(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = b"x" * 1000
    digest = hashlib.sha256(data).hexdigest()
    path = store.path_of(digest)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"x" * 10)  # a leftover of the wrong size (not written by put)
    assert store.put(data).size == 1000 and path.read_bytes() == data
    path.write_bytes(b"y" * 1000)
    with pytest.raises(BlobStoreError, match="corrupted"):
        store.get(path.as_uri())


def test_get_refuses_uris_outside_the_store(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    (tmp_path / "secret").write_bytes(b"s")
    with pytest.raises(BlobStoreError):
        store.get((tmp_path / "secret").as_uri())


def test_delete_removes_a_blob_for_good_and_nothing_outside_the_store(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    blob = store.put(b"a DICOM instance of a patient to erase")
    assert store.delete(blob.uri) is True
    assert not store.path_of(blob.sha256).exists()
    with pytest.raises(BlobStoreError):
        store.get(blob.uri)
    assert store.delete(blob.uri) is False  # again (an erasure run twice)
    (tmp_path / "secret").write_bytes(b"s")
    with pytest.raises(BlobStoreError):
        store.delete((tmp_path / "secret").as_uri())
    assert (tmp_path / "secret").exists()


def test_stores_open_by_uri_scheme(tmp_path: Path) -> None:
    assert isinstance(open_blob_store(tmp_path.as_uri()), LocalBlobStore)
    with pytest.raises(BlobStoreError, match=r"CARELOG_BLOB_URI=s4://bucket.*no blob store"):
        open_blob_store("s4://bucket/prefix")

    class Memory:
        def __init__(self) -> None:
            self.blobs: dict[str, bytes] = {}

        def put(self, data: bytes) -> StoredBlob:
            digest = hashlib.sha256(data).hexdigest()
            self.blobs[f"mem://{digest}"] = data
            return StoredBlob(f"mem://{digest}", digest, len(data))

        def get(self, uri: str) -> bytes:
            return self.blobs[uri]

        def delete(self, uri: str) -> bool:
            return self.blobs.pop(uri, None) is not None

    memory = Memory()
    register_scheme("mem", lambda uri: memory)
    assert open_blob_store("mem://").put(b"abc").uri.startswith("mem://")


def test_default_location_is_under_var_dir(tmp_path: Path) -> None:
    store = blob_store_from_settings(Settings(var_dir=tmp_path))
    assert isinstance(store, LocalBlobStore) and store.root == (tmp_path / "blobs").resolve()
