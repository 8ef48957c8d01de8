"""Errors of the HL7 v2 processor. `location` names the place at fault (MSH-18, PID-3, OBX[2]-5)."""

from __future__ import annotations


class Hl7v2Error(ValueError):
    """Base of every error this package raises."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message


class ParseError(Hl7v2Error):
    """The bytes are not a well-formed ER7 message (no MSH, bad separators, bad charset)."""


class MappingError(Hl7v2Error):
    """A well-formed message cannot be mapped: unsupported type or a required field missing."""


class UnsupportedMessageType(MappingError):
    """MSH-9 names a message type/trigger carelog does not translate."""


class StructureError(MappingError):
    """The segments are not in an order the message's structure allows (OBX before any OBR):
    never an optional field, so the message is refused (processors/hl7v2/tolerance.py)."""
