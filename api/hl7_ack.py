"""HL7 v2 acknowledgements (ACK) in ER7: AA when stored, AE/AR with an ERR segment otherwise."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from streams.hl7_header import MshHeader


class AckCode(StrEnum):
    accept = "AA"  # on the log
    error = "AE"  # could not be stored now (e.g. Kafka down): the sender should retry
    reject = "AR"  # will never be accepted as sent (bad framing, bad MSH): fix and resend


# HL7 table 0357 (message error condition codes) entries carelog uses.
ERROR_CODES = {
    "segment_sequence": ("100", "Segment sequence error"),
    "required_field_missing": ("101", "Required field missing"),
    "data_type": ("102", "Data type error"),
    "unsupported_message_type": ("200", "Unsupported message type"),
    "application_error": ("207", "Application internal error"),
}


def _escape(text: str, header: MshHeader | None) -> str:
    """Escape HL7 delimiters in free text (\\F\\ \\S\\ \\R\\ \\E\\ \\T\\)."""
    fs = header.field_separator if header else "|"
    enc = header.encoding_characters if header else "^~\\&"
    comp, rep, esc = enc[0], enc[1], enc[2] if len(enc) > 2 else "\\"
    sub = enc[3] if len(enc) > 3 else "&"
    out = text.replace(esc, f"{esc}E{esc}")
    for ch, name in ((fs, "F"), (comp, "S"), (rep, "R"), (sub, "T")):
        out = out.replace(ch, f"{esc}{name}{esc}")
    return out.replace("\r", " ").replace("\n", " ")


def build_ack(
    header: MshHeader | None,
    code: AckCode,
    text: str = "",
    error: str = "application_error",
    location: str = "",
) -> str:
    """An ACK answering `header` (None when the MSH could not be read: defaults are used).

    `location` is an HL7 field reference like MSH-9 or PID-3; it goes into ERR.
    """
    fs = header.field_separator if header else "|"
    enc = header.encoding_characters if header else "^~\\&"
    comp = enc[0]
    version = header.version if header and header.version else "2.5.1"
    trigger = header.trigger[1] if header else ""
    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    msh = fs.join(
        [
            "MSH", enc,
            header.receiving_application if header else "CARELOG",
            header.receiving_facility if header else "CARELOG",
            header.sending_application if header else "",
            header.sending_facility if header else "",
            now, "",
            comp.join(["ACK", trigger, "ACK"]) if trigger else comp.join(["ACK", "", "ACK"]),
            uuid.uuid4().hex[:20],
            header.processing_id if header and header.processing_id else "P",
            version,
        ]
    )  # fmt: skip
    control_id = header.control_id if header else ""
    segments = [msh, fs.join(["MSA", code.value, control_id, _escape(text, header)[:80]])]
    if code is not AckCode.accept:
        err_code, err_text = ERROR_CODES[error]
        segment, _, field = location.partition("-")
        erl = comp.join([segment, "1", field]) if segment and field else segment
        if version[:3] in ("2.1", "2.2", "2.3", "2.4"):
            # Before 2.5, ERR-1 (ELD): segment^sequence^field^code
            eld = comp.join([segment, "1", field, comp.join([err_code, err_text])])
            segments.append(fs.join(["ERR", eld]))
        else:
            # 2.5+: ERR-2 location, ERR-3 code (HL70357), ERR-4 severity, ERR-8 user message
            cwe = comp.join([err_code, err_text, "HL70357"])
            segments.append(fs.join(["ERR", "", erl, cwe, "E", "", "", "", _escape(text, header)]))
    return "\r".join(segments) + "\r"
