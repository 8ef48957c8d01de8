"""The bytes an inbound event stands for: inline, or fetched from the blob store by reference."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

from schemas.events import InboundMessage


class PayloadMissing(ValueError):
    """The event's bytes cannot be had: no payload, or a reference that does not resolve."""


def read_payload(event: InboundMessage, attempts: int = 5, first_delay: float = 0.1) -> bytes:
    """The exact bytes received. Blob reads are retried with back-off (transient I/O errors)."""
    if event.payload is not None:
        return event.payload
    if not event.payload_ref:
        raise PayloadMissing("the event has neither payload nor payload_ref")
    url = urlparse(event.payload_ref)
    if url.scheme != "file":
        raise PayloadMissing(f"blob scheme {url.scheme!r} is not readable by this worker")
    path = Path(unquote(url.path))
    delay = first_delay
    for attempt in range(attempts):
        try:
            data = path.read_bytes()
            break
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise PayloadMissing(f"blob {event.payload_ref} does not exist") from None
        except OSError:
            if attempt == attempts - 1:
                raise
        time.sleep(delay)
        delay *= 2
    if hashlib.sha256(data).hexdigest() != event.sha256:
        raise PayloadMissing(f"blob {event.payload_ref} does not match sha256 {event.sha256}")
    return data
