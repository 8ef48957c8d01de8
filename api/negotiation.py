"""Content-Type and Accept checks: 415 for bodies we do not take, 406 for answers we cannot give."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request

from api.errors import NotAcceptable, UnsupportedMediaType
from api.raw_headers import header_value


def media_type(value: str | None) -> str:
    """`type/subtype` without parameters, lower case ("" when absent)."""
    return (value or "").split(";", 1)[0].strip().lower()


def require_content_type(request: Request, accepted: Sequence[str]) -> str:
    """The request's media type if it is one of `accepted`, else 415."""
    got = media_type(header_value(request.scope, b"content-type"))
    if got not in accepted:
        shown = got or "none"
        raise UnsupportedMediaType(f"Content-Type {shown} is not accepted here; send one of: "
                                   + ", ".join(accepted))  # fmt: skip
    return got


def _accepts(pattern: str, offered: str) -> bool:
    if pattern in ("*/*", "*", offered):
        return True
    kind, _, sub = pattern.partition("/")
    return sub == "*" and offered.startswith(kind + "/")


def negotiate(request: Request, offered: Sequence[str]) -> str:
    """The first of `offered` the client's Accept allows (the first when no Accept), else 406."""
    header = header_value(request.scope, b"accept")
    if not header or not header.strip():
        return offered[0]
    ranges: list[tuple[float, str]] = []
    for part in header.split(","):
        pattern, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if pattern and quality > 0:
            ranges.append((quality, pattern.lower()))
    for _, pattern in sorted(ranges, key=lambda r: -r[0]):
        for candidate in offered:
            if _accepts(pattern, candidate):
                return candidate
    raise NotAcceptable(f"cannot answer in any type of Accept: {header[:200]}; "
                        "this route answers " + ", ".join(offered))  # fmt: skip
