"""One message the demo sends, as data: where it goes, its exact bytes, and (for the
deliberately bad ones) why carelog should reject it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from schemas.events import Format

Channel = Literal["mllp", "http"]


@dataclass(frozen=True, slots=True)
class Outgoing:
    stream: str  # the progress bar it counts on, e.g. "labs over HTTP"
    channel: Channel
    format: Format
    body: bytes
    label: str  # says what it is, e.g. "DM00700003 ORU^R01 CBC"
    path: str = ""  # HTTP route, e.g. /hl7v2
    method: str = "POST"
    content_type: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    # DICOM: the instances inside the multipart body; others: (body,).
    parts: tuple[bytes, ...] = ()
    bad: str | None = None  # deliberately bad: what is wrong with it
    tag: str = ""  # bad ones: a string in their bytes that finds their rejection

    def __post_init__(self) -> None:
        if not self.parts:
            object.__setattr__(self, "parts", (self.body,))

    @property
    def event_headers(self) -> dict[str, str]:
        """The InboundMessage headers the gateway records for a FHIR write."""
        found = {"http.method": self.method, "http.path": self.path}
        found.update(
            (f"http.{k.lower()}", v)
            for k, v in self.headers
            if k.lower() in ("if-none-exist", "if-match", "prefer")
        )
        return found


@dataclass(frozen=True, slots=True)
class Phase:
    """Messages sent together; a phase starts when the one before it was acknowledged."""

    name: str
    messages: list[Outgoing] = field(default_factory=list)
