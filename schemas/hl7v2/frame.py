"""What makes bytes an ER7 message: the one rule the edge accepts by and the parser parses by.

`read_er7` is the verdict: the gateway and the MLLP listener answer AA only for what it
accepts, and the processor's parser (processors/hl7v2/parser.py) builds its tree from what it
returns, so the two can never disagree on whether a message is well formed. `read_msh` reads
only the first segment, by the same MSH rules, for the ACK of a message refused otherwise
(too large, or malformed after its MSH).

The rules: after MLLP framing bytes, whitespace and a UTF-8 BOM, the message starts with MSH;
MSH-1 and MSH-2 (2 to 5 encoding characters) are printable ASCII, neither letters nor digits,
and no separator repeats; MSH-9.1, MSH-10 and MSH-12.1 are not blank; MSH-18 names a
character set carelog knows (none: UTF-8, else Latin-1) and the bytes are valid in it; every
other segment is named by three capitals or digits, the first a capital. Segments end with
CR; LF and CRLF are tolerated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from schemas.hl7v2.charset import decode, msh18
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.escapes import unescape

_NAME: Final = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_LEADING: Final = b"\x0b \t\r\n"  # MLLP start block, stray whitespace
_TRAILING: Final = b"\x1c\r\n"  # MLLP end block, last segment terminator
_BOM: Final = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Encoding:
    """The separators of one message (MSH-1, MSH-2) and its character set codec."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str = ""
    codec: str = "utf-8"

    def unescape(self, text: str) -> str:
        if not self.escape or self.escape not in text:
            return text
        return unescape(
            text,
            self.field,
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
            self.codec,
        )


@dataclass(frozen=True, slots=True)
class MshHeader:
    """The MSH fields as sent, escapes kept, read as Latin-1 so that an ACK encoded back as
    Latin-1 echoes the sender's own bytes whatever its MSH-18 (the rules are checked on the
    segment decoded in its character set; the separators are ASCII, so both split alike)."""

    field_separator: str
    encoding_characters: str
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str  # MSH-9 as sent, e.g. ORU^R01^ORU_R01
    control_id: str  # MSH-10
    processing_id: str  # MSH-11
    version: str  # MSH-12
    character_set: str  # MSH-18, empty when absent
    accept_ack_type: str = ""  # MSH-15 (HL7 table 0155: AL, NE, ER, SU), empty when absent
    application_ack_type: str = ""  # MSH-16 (table 0155), empty when absent
    codec: str = "utf-8"  # the Python codec of the message's bytes (MSH-18)

    @property
    def component_separator(self) -> str:
        return self.encoding_characters[0]

    @property
    def trigger(self) -> tuple[str, str]:
        """(message code, trigger event) from MSH-9, e.g. ("ADT", "A01")."""
        parts = self.message_type.split(self.component_separator)
        return parts[0], parts[1] if len(parts) > 1 else ""


@dataclass(frozen=True, slots=True)
class Er7:
    """A well-formed message: its header, separators and segments (decoded text, MSH first,
    blank lines dropped)."""

    header: MshHeader
    encoding: Encoding
    segments: list[str]
    text: str  # the decoded message, segments joined by CR


def read_er7(payload: bytes) -> Er7:
    """The message, or FormatError naming the first rule it breaks (see the module)."""
    data = _start(payload).rstrip(_TRAILING)
    end = _line_end(data)
    first = data if end < 0 else data[:end]
    text, codec = decode(data, msh18(first))
    return er7_of_text(text, codec, first.decode("latin-1"))


def er7_of_text(text: str, codec: str = "utf-8", sent: str | None = None) -> Er7:
    """read_er7 of text already decoded (framing and BOM allowed around it); `sent` is the
    first segment's bytes read as Latin-1, for the header's fields."""
    text = text.lstrip("\x0b \t\r\n\ufeff").rstrip("\x1c\r\n")
    if not text.startswith("MSH"):
        raise FormatError("MSH", "the message must start with an MSH segment")
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    lines = text.split("\r")
    header, encoding = _msh(lines[0], codec, lines[0] if sent is None else sent)
    segments = [lines[0]]
    for line in lines[1:]:
        if not line or line.isspace():
            continue
        name = line.split(encoding.field, 1)[0]
        if not _NAME.match(name):
            raise FormatError(
                f"segment {len(segments) + 1}", f"{name[:10]!r} is not a segment name"
            )
        segments.append(line)
    return Er7(header, encoding, segments, text)


def read_msh(payload: bytes) -> MshHeader:
    """The MSH by read_er7's MSH rules, reading the first segment only (the ACK of a message
    refused as too large or malformed further on still echoes its MSH)."""
    data = _start(payload)
    end = _line_end(data)
    first = data.rstrip(_TRAILING) if end < 0 else data[:end]
    line, codec = decode(first, msh18(first))
    return _msh(line, codec, first.decode("latin-1"))[0]


def msh_fields(line: str, separator: str) -> list[str]:
    """MSH split as the parser numbers it: fields[n] is MSH-n (fields[1] the separator)."""
    return ["MSH", separator, *line.split(separator)[1:]]


def _start(payload: bytes) -> bytes:
    data = payload.lstrip(_LEADING)
    if data.startswith(_BOM):
        data = data[3:]
    if not data.startswith(b"MSH"):
        raise FormatError("MSH", "the message must start with an MSH segment")
    return data


def _line_end(data: bytes) -> int:
    end = data.find(b"\r")
    newline = data.find(b"\n")
    return newline if end < 0 or 0 <= newline < end else end


def _separator_ok(char: str) -> bool:
    return char.isascii() and char.isprintable() and not (char.isalnum() or char.isspace())


def _msh(line: str, codec: str, sent: str) -> tuple[MshHeader, Encoding]:
    if len(line) < 4:
        raise FormatError("MSH-1", "the MSH segment ends before its field separator")
    sep = line[3]
    if not _separator_ok(sep):
        raise FormatError("MSH-1", f"field separator {sep!r} is not valid")
    fields = msh_fields(line, sep)
    chars = fields[2] if len(fields) > 2 else ""
    if not 2 <= len(chars) <= 5:
        raise FormatError("MSH-2", f"encoding characters {chars!r} are not 2 to 5 characters")
    if not all(_separator_ok(c) for c in chars):
        raise FormatError("MSH-2", f"encoding characters {chars!r} are not all valid separators")
    if len(set(chars + sep)) != len(chars) + 1:
        raise FormatError("MSH-2", f"encoding characters {chars!r} repeat a separator")

    def field(n: int) -> str:
        return fields[n] if len(fields) > n else ""

    component = chars[0]
    if not field(9).split(component, 1)[0].strip():
        raise FormatError("MSH-9", "message type is missing")
    if not field(10).strip():
        raise FormatError("MSH-10", "message control id is missing")
    if not field(12).split(component, 1)[0].strip():
        raise FormatError("MSH-12", "version id is missing")
    fields = msh_fields(sent, sep)
    header = MshHeader(
        field_separator=sep,
        encoding_characters=chars,
        sending_application=field(3),
        sending_facility=field(4),
        receiving_application=field(5),
        receiving_facility=field(6),
        message_type=field(9),
        control_id=field(10),
        processing_id=field(11),
        version=field(12),
        character_set=field(18),
        accept_ack_type=field(15).strip().upper(),
        application_ack_type=field(16).strip().upper(),
        codec=codec,
    )
    encoding = Encoding(
        field=sep,
        component=component,
        repetition=chars[1],
        escape=chars[2] if len(chars) > 2 else "",
        subcomponent=chars[3] if len(chars) > 3 else "",
        truncation=chars[4] if len(chars) > 4 else "",
        codec=codec,
    )
    return header, encoding
