"""HL7 v2 acknowledgements (ACK) in ER7: AA when stored, AE/AR with an ERR segment otherwise.

Original mode (MSH-15 and MSH-16 empty) answers AA / AE / AR. A message that values MSH-15
or MSH-16 asks for enhanced mode (HL7 v2.5.1 chapter 2.9.3): its ACK is the accept
acknowledgement, CA / CE / CR, sent or not as MSH-15 (table 0155) says: AL always (also
when MSH-15 is empty), NE never, ER only on error or reject, SU only on success. Either way
the ACK means what carelog can say at the door: the message is on the log (not yet
translated); carelog sends no application acknowledgement later (MSH-16 is not honoured).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum

from schemas.hl7v2.frame import MshHeader


class AckCode(StrEnum):
    accept = "AA"  # on the log
    error = "AE"  # could not be stored now (e.g. Kafka down): the sender should retry
    reject = "AR"  # will never be accepted as sent (bad framing, bad MSH): fix and resend
    # The same three outcomes as accept acknowledgements (enhanced mode).
    commit_accept = "CA"
    commit_error = "CE"
    commit_reject = "CR"


_COMMIT = {
    AckCode.accept: AckCode.commit_accept,
    AckCode.error: AckCode.commit_error,
    AckCode.reject: AckCode.commit_reject,
}


def enhanced_mode(header: MshHeader | None) -> bool:
    """True when the message asks for enhanced acknowledgement (MSH-15 or MSH-16 valued)."""
    return header is not None and bool(header.accept_ack_type or header.application_ack_type)


def answer_code(header: MshHeader | None, outcome: AckCode) -> AckCode:
    """The MSA-1 answering `outcome` (AA, AE or AR): its commit code in enhanced mode."""
    return _COMMIT.get(outcome, outcome) if enhanced_mode(header) else outcome


def accept_ack_wanted(header: MshHeader | None, outcome: AckCode) -> bool:
    """Whether the sender asked for an ACK of this outcome (MSH-15; original mode: always).

    An MSH-15 value outside table 0155 is answered as AL: an ACK too many is safer than a
    sender waiting for one that never comes."""
    if header is None or not enhanced_mode(header):
        return True
    condition = header.accept_ack_type
    if condition == "NE":
        return False
    if condition == "ER":
        return outcome is not AckCode.accept
    if condition == "SU":
        return outcome is AckCode.accept
    return True


# HL7 table 0357 (message error condition codes) entries carelog uses.
ERROR_CODES = {
    "segment_sequence": ("100", "Segment sequence error"),
    "required_field_missing": ("101", "Required field missing"),
    "data_type": ("102", "Data type error"),
    "unsupported_message_type": ("200", "Unsupported message type"),
    "application_error": ("207", "Application internal error"),
}


def error_of(location: str) -> str:
    """The ERROR_CODES entry of a refusal at `location`: the HL7 v2 contract's locations
    (schemas.hl7v2.frame) by what is wrong, anything else an application error."""
    if location in ("MSH-9", "MSH-10", "MSH-12"):
        return "required_field_missing"
    if location in ("MSH-1", "MSH-2", "MSH-18"):
        return "data_type"
    if location == "MSH" or location.startswith("segment "):
        return "segment_sequence"
    return "application_error"


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

    `code` is the outcome (AA, AE or AR); MSA-1 is its commit code (CA, CE, CR) when the
    message asked for enhanced mode. `location` is an HL7 field reference like MSH-9 or
    PID-3; it goes into ERR.
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
    msa = answer_code(header, code).value
    segments = [msh, fs.join(["MSA", msa, control_id, _escape(text, header)[:80]])]
    if code not in (AckCode.accept, AckCode.commit_accept):
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
