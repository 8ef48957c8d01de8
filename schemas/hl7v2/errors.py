"""The one error of the HL7 v2 contract."""

from __future__ import annotations


class FormatError(ValueError):
    """The bytes are not a well-formed ER7 message. `location` names the place at fault
    (MSH-2, MSH-18, segment 4), as an ACK's ERR segment and an OperationOutcome want it."""

    def __init__(self, location: str, message: str) -> None:
        super().__init__(f"{location}: {message}")
        self.location = location
        self.message = message

    @property
    def field(self) -> str:
        """The location, by the name the ACK builders use."""
        return self.location
