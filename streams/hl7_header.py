"""Just enough of an HL7 v2 message to file it: the MSH fields and the patient identifier.

This is a frame check, not a parse: it never translates. It reads bytes so that the exact
message stays as received whatever MSH-18 says.
"""

from __future__ import annotations

from dataclasses import dataclass


class HeaderError(ValueError):
    """The message has no usable MSH segment. `field` names what is at fault (e.g. MSH-9)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True, slots=True)
class MshHeader:
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

    @property
    def component_separator(self) -> str:
        return self.encoding_characters[0]

    @property
    def trigger(self) -> tuple[str, str]:
        """(message code, trigger event) from MSH-9, e.g. ("ADT", "A01")."""
        parts = self.message_type.split(self.component_separator)
        return parts[0], parts[1] if len(parts) > 1 else ""


def split_segments(payload: bytes) -> list[bytes]:
    """Segments of one message; CR is the standard terminator, LF and CRLF are tolerated."""
    text = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    return [s for s in text.split(b"\r") if s.strip()]


def read_msh(payload: bytes) -> MshHeader:
    """The MSH of a message, checking MSH-9, MSH-10 and MSH-12 are present."""
    start = payload.lstrip(b"\x0b \t\r\n")
    if start.startswith(b"\xef\xbb\xbf"):
        start = start[3:]
    if not start.startswith(b"MSH") or len(start) < 8:
        raise HeaderError("MSH", "the message must start with an MSH segment")
    # The first segment only (it is the first of split_segments(start), without splitting all).
    end = len(start)
    for terminator in (b"\r", b"\n"):
        found = start.find(terminator, 0, end)
        if found >= 0:
            end = found
    segment = start[:end].decode("latin-1")
    if len(segment) < 4:
        raise HeaderError("MSH-1", "the MSH segment ends before its field separator")
    sep = segment[3]
    if sep.isalnum() or sep.isspace():
        raise HeaderError("MSH-1", f"field separator {sep!r} is not valid")
    fields = segment.split(sep)
    # fields[0] is "MSH"; MSH-1 is the separator itself, so MSH-n is fields[n - 1].
    encoding = fields[1] if len(fields) > 1 else ""
    if len(encoding) < 2:
        raise HeaderError("MSH-2", "encoding characters are missing")

    def field(n: int) -> str:
        return fields[n - 1] if len(fields) > n - 1 else ""

    header = MshHeader(
        field_separator=sep,
        encoding_characters=encoding,
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
    )
    if not header.message_type:
        raise HeaderError("MSH-9", "message type is missing")
    if not header.control_id:
        raise HeaderError("MSH-10", "message control id is missing")
    if not header.version:
        raise HeaderError("MSH-12", "version id is missing")
    return header


def patient_identifier(payload: bytes, header: MshHeader) -> str | None:
    """PID-3's first identifier as id^authority, or None when there is no PID."""
    sep = header.field_separator.encode("latin-1")
    comp = header.component_separator.encode("latin-1")
    rep = header.encoding_characters[1].encode("latin-1")
    # The first PID segment, found without splitting every segment (as split_segments would).
    text = payload.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    pid = b"PID" + sep
    if text.startswith(pid):
        begin = 0
    else:
        begin = text.find(b"\r" + pid) + 1
        if begin == 0:
            return None
    end = text.find(b"\r", begin)
    fields = (text[begin:] if end < 0 else text[begin:end]).split(sep)
    if len(fields) <= 3 or not fields[3]:
        return None
    cx = fields[3].split(rep)[0].split(comp)
    authority = cx[3] if len(cx) > 3 else b""
    return (cx[0] + (b"^" + authority if authority else b"")).decode("latin-1")
