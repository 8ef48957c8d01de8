"""header_value reads what starlette's Headers would, without building them."""

from __future__ import annotations

from starlette.datastructures import Headers

from api.raw_headers import header_value


def test_the_same_value_as_starlette_headers_present_absent_repeated_and_latin1() -> None:
    raw = [(b"content-type", b"x-application/hl7-v2+er7"), (b"x-note", b"caf\xe9"),
           (b"accept", b"text/plain"), (b"accept", b"*/*"), (b"content-length", b"")]  # fmt: skip
    scope = {"type": "http", "headers": raw}
    headers = Headers(scope=scope)
    for name in ("content-type", "x-note", "accept", "content-length", "authorization"):
        assert header_value(scope, name.encode()) == headers.get(name), name
