"""One request header read straight from the ASGI scope.

starlette's `request.headers.get(name)` builds a Headers object and, for a header the
request lacks, raises and catches a KeyError; on the ingest hot path, where Accept is
usually absent, a scan of the raw (name, value) pairs is the cheaper way to the same value.
"""

from __future__ import annotations

from starlette.types import Scope


def header_value(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case, as ASGI servers give names), decoded as
    latin-1 like starlette's Headers; None when absent."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
