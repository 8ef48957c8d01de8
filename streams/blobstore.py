"""Content-addressed storage for payloads too big for a Kafka event (DICOM pixel data).

A blob is named by its SHA-256 (`sha256/<2 hex>/<64 hex>` under the store's root), so
writing the same bytes twice stores them once and the name proves the content. The event
carries the blob's URI, hash and size instead of the bytes.

`BlobStore` is the interface; `LocalBlobStore` keeps blobs in a folder (file:// URIs).
Other backends (object storage) plug in by URI scheme with `register_scheme`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from streams.settings import Settings


class BlobStoreError(RuntimeError):
    """A blob could not be stored or read."""


@dataclass(frozen=True, slots=True)
class StoredBlob:
    uri: str
    sha256: str
    size: int


class BlobStore(Protocol):
    def put(self, data: bytes) -> StoredBlob:
        """Store `data` under its hash (atomic; a second put of the same bytes is a no-op)."""
        ...

    def get(self, uri: str) -> bytes:
        """The bytes of a blob this store holds; BlobStoreError if it does not."""
        ...

    def delete(self, uri: str) -> bool:
        """Remove a blob for good (`carelog erase`); False when the store did not hold it."""
        ...


def blob_name(sha256: str) -> str:
    return f"sha256/{sha256[:2]}/{sha256}"


class LocalBlobStore:
    """Blobs as files under `root`; writes go to a temporary file, then an atomic rename."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path_of(self, sha256: str) -> Path:
        return self.root / blob_name(sha256)

    def put(self, data: bytes) -> StoredBlob:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_of(digest)
        stored = StoredBlob(path.as_uri(), digest, len(data))
        try:
            if path.is_file() and path.stat().st_size == len(data):
                return stored  # content-addressed: the same name holds the same bytes
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest[:16]}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)  # atomic: readers see nothing or the whole blob
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself survives a crash
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise BlobStoreError(f"cannot store blob {digest} under {self.root}: {exc}") from exc
        return stored

    def _path(self, uri: str) -> Path:
        path = Path(unquote(urlparse(uri).path))
        if urlparse(uri).scheme != "file" or not path.is_relative_to(self.root):
            raise BlobStoreError(f"{uri} is not a blob of the store at {self.root}")
        return path

    def delete(self, uri: str) -> bool:
        path = self._path(uri)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise BlobStoreError(f"cannot remove blob {uri}: {exc}") from exc
        return True

    def get(self, uri: str) -> bytes:
        path = self._path(uri)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BlobStoreError(f"cannot read blob {uri}: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != path.name:
            raise BlobStoreError(f"blob {uri} does not match its hash: corrupted")
        return data


_SCHEMES: dict[str, Callable[[str], BlobStore]] = {
    "file": lambda uri: LocalBlobStore(Path(unquote(urlparse(uri).path))),
}


def register_scheme(scheme: str, factory: Callable[[str], BlobStore]) -> None:
    """Plug in a backend, e.g. `register_scheme("s3", lambda uri: MyS3Store(uri))`."""
    _SCHEMES[scheme] = factory


def blob_schemes() -> set[str]:
    """The URI schemes of blobs (a resource's url in one of them points into a blob store)."""
    return set(_SCHEMES)


def open_blob_store(uri: str) -> BlobStore:
    scheme = urlparse(uri).scheme
    try:
        factory = _SCHEMES[scheme]
    except KeyError:
        known = ", ".join(f"{s}://" for s in sorted(_SCHEMES))
        raise BlobStoreError(
            f"CARELOG_BLOB_URI={uri}: no blob store for scheme {scheme!r} (known: {known})"
        ) from None
    return factory(uri)


def blob_store_from_settings(settings: Settings) -> BlobStore:
    """The store at CARELOG_BLOB_URI, default a folder under CARELOG_VAR_DIR."""
    return open_blob_store(settings.blobs.uri or (settings.var_dir / "blobs").resolve().as_uri())
