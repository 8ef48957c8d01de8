"""MSH-18 character set to a Python codec, and decoding of the exact message bytes."""

from __future__ import annotations

from schemas.hl7v2.errors import FormatError

# HL7 table 0211 (alternate character sets) -> Python codec.
CHARSETS: dict[str, str] = {
    "ASCII": "ascii",
    "8859/1": "latin-1",
    "8859/2": "iso8859-2",
    "8859/3": "iso8859-3",
    "8859/4": "iso8859-4",
    "8859/5": "iso8859-5",
    "8859/6": "iso8859-6",
    "8859/7": "iso8859-7",
    "8859/8": "iso8859-8",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UNICODE": "utf-8",  # pre-2.5 senders mean UTF-8 by this in practice
    "UNICODE UTF-16": "utf-16",
    "ISO IR6": "ascii",
    "ISO IR100": "latin-1",
    "ISO IR192": "utf-8",
    "GB 18030-2000": "gb18030",
    "KS X 1001": "euc-kr",
    "BIG-5": "big5",
}


def msh18(first_segment: bytes) -> str:
    """MSH-18 as sent (first repetition), read from the raw MSH bytes; empty when absent."""
    if len(first_segment) < 4:
        return ""
    sep = first_segment[3:4]
    parts = first_segment.split(sep)
    # parts[0] = "MSH", parts[1] = MSH-2, so MSH-n = parts[n - 1]
    if len(parts) < 18:
        return ""
    value = parts[17].decode("latin-1")
    rep = parts[1][1:2].decode("latin-1") if len(parts[1]) > 1 else "~"
    return value.split(rep)[0].strip() if rep else value.strip()


def decode(payload: bytes, declared: str) -> tuple[str, str]:
    """(text, codec) of the message. Without MSH-18: UTF-8, else Latin-1 (never fails)."""
    if not declared:
        try:
            return payload.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            return payload.decode("latin-1"), "latin-1"
    codec = CHARSETS.get(declared.upper())
    if codec is None:
        raise FormatError("MSH-18", f"unsupported character set {declared!r}")
    try:
        return payload.decode(codec), codec
    except UnicodeDecodeError as exc:
        raise FormatError(
            "MSH-18", f"the bytes are not valid {declared} ({codec}): {exc.reason} at {exc.start}"
        ) from exc
