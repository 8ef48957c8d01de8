"""multipart/related (RFC 2387) bodies, as DICOMweb STOW-RS sends them: split into parts.

Pure: bytes in, parts out. The whole body is in memory (the route reads it under a size
limit); each part's content is one slice of it.
"""

from __future__ import annotations

from dataclasses import dataclass


class MultipartError(ValueError):
    """The body or its Content-Type is not a usable multipart/related message."""


class TooManyParts(MultipartError):
    """The body holds more parts than the caller takes."""


@dataclass(frozen=True, slots=True)
class MediaType:
    type: str  # e.g. multipart/related, lower case
    params: dict[str, str]  # names lower case, values unquoted


@dataclass(frozen=True, slots=True)
class Part:
    headers: dict[str, str]  # names lower case
    content: bytes

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("content-type")
        return parse_media_type(value).type if value else None


def parse_media_type(value: str) -> MediaType:
    """`type/subtype; name=value; name="quoted; value"` -> MediaType."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            out = []
            i += 1
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                out.append(rest[i])
                i += 1
            i += 1
            params[name] = "".join(out)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            params[name] = rest[i:end].strip()
            i = end
    return MediaType(head.strip().lower(), params)


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(b":")
        if not sep:
            raise MultipartError(f"part header line without a colon: {line[:60]!r}")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return headers


def split_parts(body: bytes, boundary: str, max_parts: int | None = None) -> list[Part]:
    """The parts of a multipart body (preamble and epilogue ignored).

    Raises MultipartError when the boundary never appears, a part has no header/body
    separator, or the closing delimiter is missing; TooManyParts as soon as it finds part
    number max_parts + 1 (the rest is not split).
    """
    if not boundary or len(boundary) > 70:
        raise MultipartError("the boundary parameter must be 1 to 70 characters")
    dash = b"--" + boundary.encode("latin-1")
    delimiter = b"\r\n" + dash
    if body.startswith(dash):  # no preamble
        pos = len(dash)
    else:
        pos = body.find(delimiter)
        if pos < 0:
            raise MultipartError(f"the body holds no part delimited by boundary {boundary!r}")
        pos += len(delimiter)
    parts: list[Part] = []
    while True:
        if body.startswith(b"--", pos):  # the close delimiter
            return parts
        if max_parts is not None and len(parts) == max_parts:
            raise TooManyParts(f"the body holds more than {max_parts} parts")
        line_end = body.find(b"\r\n", pos)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise MultipartError("a boundary line must end with CRLF")
        start = line_end + 2
        nxt = body.find(delimiter, start - 2)  # an empty part: its delimiter follows at once
        if nxt < 0:
            raise MultipartError("the body ends without the closing boundary")
        raw = body[start:nxt] if nxt >= start else b""
        split = raw.find(b"\r\n\r\n")
        if raw.startswith(b"\r\n"):  # no headers at all
            headers, content = {}, raw[2:]
        elif split < 0:
            raise MultipartError("a part has no blank line between its headers and content")
        else:
            headers, content = _headers(raw[:split]), raw[split + 4 :]
        parts.append(Part(headers, content))
        pos = nxt + len(delimiter)
