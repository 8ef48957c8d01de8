"""Reading a request body under a size limit, refusing early: by Content-Length when it is
declared, else as soon as the streamed body passes the limit (never buffering all of it)."""

from __future__ import annotations

from starlette.requests import Request

from api.errors import BadRequest, PayloadTooLarge
from api.raw_headers import header_value


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    declared = header_value(request.scope, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)
