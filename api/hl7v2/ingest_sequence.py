"""The ingest sequence of one HL7 v2 message, the same over MLLP and HTTP.

frame check (the HL7 v2 contract: schemas.hl7v2.frame.read_er7) -> the InboundMessage holding
its exact bytes -> queued through the Ingestor, keyed by sender and PID-3 (streams.keys) ->
its ACK: AA once the broker confirmed, AE when it did not (retry), AR when the message can
never be accepted as sent (kept on carelog.rejected with the reason first; AE if even that
failed). In enhanced mode (MSH-15/16 valued) these are CA / CE / CR (api/hl7v2/ack.py).

A transport supplies a `Door`: who the sender is, the event's transport fields, how to queue
and how to keep a refusal, and how its ACKs are written (MLLP frames them and may withhold
them as MSH-15 asks; HTTP answers every message). It keeps only its framing and its I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from api.hl7v2.ack import AckCode, error_of
from processors.ids import hl7v2_owner
from schemas.events import InboundMessage
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import MshHeader, read_er7, read_msh
from schemas.hl7v2.patient import message_patient
from schemas.outcome import Issue
from streams.errors import DeliveryFailed
from streams.keys import hl7v2_key
from streams.producer import Delivered

A = TypeVar("A")  # an ACK as the transport writes it: ER7 text (HTTP) or a framed one (MLLP)
A_co = TypeVar("A_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Answer(Generic[A]):
    """The outcome of one message and its ACK; `event_id` once it is on the log."""

    code: AckCode
    ack: A
    event_id: str | None = None


class Door(Protocol[A_co]):
    """What a transport does for the sequence."""

    def sender(self, header: MshHeader | None) -> str: ...

    def frame_fault(self, exc: FormatError) -> str:
        """The reason given for a message the HL7 v2 contract refuses."""
        ...

    def event(self, message: bytes, header: MshHeader, sender: str) -> InboundMessage: ...

    def produce(
        self,
        event: InboundMessage,
        key: str,
        then: Callable[[Delivered | DeliveryFailed], None],
        owner: str | None,
    ) -> None:
        """Queue `event` (sealed with `owner`'s key when that patient has one: see
        streams.privacy.envelope.seal_record); `then` runs on the loop once the broker
        answered. Raises DeliveryFailed when it cannot even be queued."""
        ...

    def not_stored(self, event: InboundMessage, header: MshHeader, exc: Exception) -> str:
        """The AE text when the broker did not confirm `event`."""
        ...

    async def keep_refused(
        self, message: bytes, issue: Issue, header: MshHeader | None, location: str
    ) -> str | None:
        """Keep a refused message on carelog.rejected: None once kept, else the AE text."""
        ...

    def answer(
        self,
        header: MshHeader | None,
        outcome: AckCode,
        text: str = "",
        error: str = "application_error",
        location: str = "",
    ) -> A_co: ...


def ingest(
    door: Door[A], message: bytes, settle: Callable[[Answer[A]], None]
) -> Coroutine[Any, Any, Answer[A]] | None:
    """Take one message in. A well-formed one is queued and None returned: `settle` gets its
    answer once the broker answered (at once if it could not be queued). A refused one gives
    the coroutine that keeps it on carelog.rejected and returns its answer (rare: the caller
    decides whether it deserves a task)."""
    try:
        er7 = read_er7(message)
    except FormatError as exc:
        issue = Issue(door.frame_fault(exc), code="structure", location=exc.location)
        header = msh_or_none(message)
        return refuse(door, message, issue, header, error_of(exc.location), exc.location)
    header = er7.header
    sender = door.sender(header)
    event = door.event(message, header, sender)

    def stored(outcome: Delivered | DeliveryFailed) -> None:
        if isinstance(outcome, DeliveryFailed):
            settle(Answer(AckCode.error, door.answer(header, AckCode.error,
                                                     door.not_stored(event, header, outcome))))  # fmt: skip
        else:
            settle(Answer(AckCode.accept, door.answer(header, AckCode.accept), event.event_id))

    try:
        patient = message_patient(er7)
        door.produce(event, hl7v2_key(er7, sender, patient), stored, hl7v2_owner(er7, patient))
    except DeliveryFailed as exc:  # could not even be queued
        stored(exc)
    return None


async def refuse(
    door: Door[A],
    message: bytes,
    issue: Issue,
    header: MshHeader | None,
    error: str,
    location: str,
    keep: Coroutine[Any, Any, str | None] | None = None,
) -> Answer[A]:
    """Keep refused input (by `keep`, else the door's keep_refused), then answer AR, or AE
    if it could not be kept."""
    if keep is None:
        keep = door.keep_refused(message, issue, header, location)
    not_kept = await keep
    if not_kept is not None:
        return Answer(AckCode.error, door.answer(header, AckCode.error, not_kept))
    return Answer(
        AckCode.reject, door.answer(header, AckCode.reject, issue.diagnostics, error, location)
    )


def msh_or_none(message: bytes) -> MshHeader | None:
    """A message's MSH, so that even its refusal's ACK echoes MSH-10."""
    try:
        return read_msh(message)
    except FormatError:
        return None
