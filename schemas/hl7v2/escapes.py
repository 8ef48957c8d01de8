"""HL7 v2 escape sequences (v2.5.1 chapter 2.7), decoded when a leaf value is read.

Decoded: \\F\\ \\S\\ \\R\\ \\E\\ \\T\\ (delimiters), \\Xhh..\\ (hex bytes, in the message's
character set; the control characters a FHIR string may not hold, all below U+0020 but tab,
LF and CR, are dropped: \\X00\\ is a C string's end, not text), \\.br\\ (line break), \\.sp\\
and \\.spN\\ (N line breaks), \\H\\ and \\N\\ (start/end highlighting: dropped, plain text has
no highlighting). Every other sequence
(\\Cxxyy\\, \\Mxxyyzz\\, \\Zxx\\, \\.in\\, \\.ti\\, \\.sk\\, \\.ce\\, \\.fi\\, \\.nf\\) and an
unterminated escape character are kept as sent.
"""

from __future__ import annotations

import re
from functools import lru_cache

_HEX = re.compile(r"^(?:[0-9A-Fa-f]{2})+$")
_SP = re.compile(r"^\.sp(\d*)$")
# What a FHIR string may not contain (R4 string: no code point below 32 but 9, 10, 13).
_NOT_TEXT = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


@lru_cache(maxsize=64)
def _delimiters(
    field: str, component: str, repetition: str, escape: str, sub: str
) -> dict[str, str]:
    return {"F": field, "S": component, "R": repetition, "E": escape, "T": sub}


def unescape(
    text: str,
    field: str = "|",
    component: str = "^",
    repetition: str = "~",
    escape: str = "\\",
    subcomponent: str = "&",
    charset: str = "latin-1",
) -> str:
    """Decode the escape sequences of one leaf value (text without any is returned as is)."""
    if not escape or escape not in text:
        return text
    delims = _delimiters(field, component, repetition, escape, subcomponent)
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        j = text.find(escape, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.find(escape, j + 1)
        if k < 0:  # unterminated: keep the rest as sent
            out.append(text[j:])
            break
        seq = text[j + 1 : k]
        out.append(_decode(seq, delims, escape, charset))
        i = k + 1
    return "".join(out)


def _decode(seq: str, delims: dict[str, str], escape: str, charset: str) -> str:
    if len(seq) == 1 and seq in delims:
        return delims[seq]
    if seq in ("H", "N"):
        return ""
    if seq == ".br":
        return "\n"
    if seq[:1] == "X" and _HEX.match(seq[1:]):
        raw = bytes.fromhex(seq[1:])
        try:
            decoded = raw.decode(charset)
        except UnicodeDecodeError:
            decoded = raw.decode("latin-1")
        return decoded.translate(_NOT_TEXT)
    m = _SP.match(seq)
    if m:
        return "\n" * max(1, int(m.group(1) or "1"))
    return f"{escape}{seq}{escape}"


def escape_text(
    text: str,
    field: str = "|",
    component: str = "^",
    repetition: str = "~",
    escape: str = "\\",
    subcomponent: str = "&",
) -> str:
    """The inverse for delimiters and line breaks: what a sender writes for `text`."""
    table = {
        escape: f"{escape}E{escape}",
        field: f"{escape}F{escape}",
        component: f"{escape}S{escape}",
        repetition: f"{escape}R{escape}",
        subcomponent: f"{escape}T{escape}",
        "\n": f"{escape}.br{escape}",
    }
    return "".join(table.get(c, c) for c in text)
