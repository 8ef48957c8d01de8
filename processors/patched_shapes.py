"""The faust-streaming internals carelog patches, checked at import against what they were.

processors/transactions.py and processors/faust_recovery.py replace or override methods of
faust-streaming (which drives aiokafka). Each patch was written against the source of the
method it replaces, overrides or relies on. pyproject pins both libraries below their next
minor version; this check catches what a pin cannot (an upgrade of the pin, a patched
release): the source of each such method is compared with the digest recorded with the
patch, and a difference stops the import with an error that names the method, the patch and
the versions tested, instead of a worker that silently loses or duplicates messages.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable, Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

TESTED = {"faust-streaming": "0.15.3", "aiokafka": "0.14.0"}


class LibraryShapeError(RuntimeError):
    """A patched library method is not the shape its patch was written for."""


def _installed() -> str:
    found = []
    for name in TESTED:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _refuse(owner: type, attribute: str, patch: str, what: str) -> LibraryShapeError:
    tested = ", ".join(f"{name} {v}" for name, v in TESTED.items())
    return LibraryShapeError(
        f"{owner.__module__}.{owner.__qualname__}.{attribute} {what}, so the patch in {patch} may no "
        f"longer hold. It was written and tested for {tested}; installed: {_installed()}. "
        f"Review the patch against the new source, then update its recorded shape."
    )


def _source(owner: type, attribute: str, patch: str) -> str:
    target = getattr(owner, attribute, None)
    if target is None:
        raise _refuse(owner, attribute, patch, "is gone")
    try:
        return inspect.getsource(target)
    except (OSError, TypeError) as exc:
        raise _refuse(owner, attribute, patch, f"has no readable source ({exc})") from exc


def source_digest(target: Callable[..., Any]) -> str:
    """The first 16 hex digits of the sha256 of the method's source text."""
    return hashlib.sha256(inspect.getsource(target).encode()).hexdigest()[:16]


def require_source(owner: type, attribute: str, digest: str, patch: str) -> None:
    """Raise LibraryShapeError unless the source of `owner.attribute` is the one `patch` was
    written for."""
    actual = hashlib.sha256(_source(owner, attribute, patch).encode()).hexdigest()[:16]
    if actual != digest:
        raise _refuse(
            owner, attribute, patch, f"changed (source sha256 {actual}, patch written for {digest})"
        )


def require_names(owner: type, attribute: str, names: Iterable[str], patch: str) -> None:
    """Raise LibraryShapeError unless the source of `owner.attribute` mentions each of `names`
    (attributes a patch reads that the library sets, e.g. in `__init__`, not declares)."""
    source = _source(owner, attribute, patch)
    missing = [name for name in names if name not in source]
    if missing:
        raise _refuse(owner, attribute, patch, f"no longer sets {', '.join(missing)}")
