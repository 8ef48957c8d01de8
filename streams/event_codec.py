"""Carelog events to bytes on the log and back: the one way, with their PHI sealed.

`encode_event` seals an event's PHI fields with its data key (streams/privacy/envelope.py)
and encodes it with the current Avro schema; `decode_event` decodes any released schema
version and opens what it can. Every producer and consumer of events goes through here (the
Faust codec in streams/faust_app.py too), so no writer can put PHI on the log in clear and
no reader needs to know about keys. An event whose key was shredded decodes with its
metadata and its `sealed` bytes (`schemas.events.is_erased`): readers skip it.
"""

from __future__ import annotations

from schemas.codec import AvroCodec
from schemas.events import Event, from_record, to_record
from streams.privacy.envelope import open_record, seal_record

_codec = AvroCodec()


def encode_event(event: Event, *, owner: str | None = None) -> bytes:
    """The bytes on the log, with the PHI fields sealed by the event's data key (`owner`: the
    patient an InboundMessage is about, when the edge knows; see `seal_record`)."""
    return encode_sealed(event, owner=owner)[0]


def encode_sealed(event: Event, *, owner: str | None = None) -> tuple[bytes, str | None]:
    """`encode_event`, and the id of the key it was sealed with (None: nothing sealed)."""
    name = type(event).__name__
    record = to_record(event)
    seal_record(name, record, owner)
    return _codec.encode(name, record), record.get("key_id")


def decode_event(data: bytes, *, open_phi: bool = True) -> Event:
    """Decode any carelog event, whichever released schema version wrote it, and open its
    sealed PHI fields (left sealed, see `is_erased`, when the key was shredded). With
    `open_phi=False` they stay sealed: for a reader of the metadata only (no key lookup)."""
    if open_phi:
        return decode_opened(data)[0]
    return from_record(*_codec.decode(data))


def decode_opened(data: bytes) -> tuple[Event, str | None]:
    """`decode_event`, and the id of the key that opened it (None: in clear or erased), for a
    reader that checks `envelope.shredded` before it writes what it read."""
    name, record = _codec.decode(data)
    key_id = open_record(name, record)
    return from_record(name, record), key_id
