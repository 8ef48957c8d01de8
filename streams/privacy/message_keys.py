"""Per-message data keys made ahead, so that sealing a message never waits on the broker.

The edge seals a new patient's message with a key of its own (envelope.seal_record). A key
must be on the log before the event sealed with it, so KafkaKeyStore.create_many confirms a
batch of them: a round trip normally, up to the producer's timeout (30 s) while the broker
is away. That wait used to happen in the caller, the gateway's event loop, once every
POOL_SIZE new patients, and during an outage at every new patient's message: no read, no
health check, no other request was served meanwhile.

Here a thread refills the pool when it runs low. A caller that finds it empty waits for
the refill in flight at most FIRST_WAIT, and once such a wait came to nothing (or a refill
failed) it waits no more until a refill succeeds: it raises DeliveryFailed at once, which
the edge answers as any unconfirmed append (503, or an MLLP negative ACK; the sender
retries).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.errors import DeliveryFailed
from streams.privacy.keystore import MESSAGE_KEYS

log = logging.getLogger(__name__)

POOL_SIZE = 256
REFILL_BELOW = 128  # a refill starts when this many are left: a burst seldom empties the rest
FIRST_WAIT = 5.0  # seconds an empty pool waits for a refill in flight (a first start's too)


class KeyMaker(Protocol):
    def create_many(self, kind: str, count: int) -> list[tuple[str, AESGCM]]: ...


class MessageKeys:
    def __init__(self) -> None:
        self._keys: deque[tuple[str, AESGCM]] = deque()
        self._changed = threading.Condition()
        self._filling = False
        self._stalled: str | None = None  # why the last refill did not come: fail at once
        self._generation = 0  # a refill started before `clear` brings keys of another store

    def take(self, store: KeyMaker) -> tuple[str, AESGCM]:
        """A fresh key, confirmed on the log; DeliveryFailed when none is ready."""
        with self._changed:
            if len(self._keys) <= REFILL_BELOW and not self._filling:
                self._filling = True
                threading.Thread(
                    target=self._refill,
                    args=(store, self._generation),
                    name="carelog-message-keys",
                    daemon=True,
                ).start()
            if not self._keys and self._stalled is None:
                self._changed.wait_for(lambda: bool(self._keys) or not self._filling, FIRST_WAIT)
                if not self._keys and self._stalled is None:
                    self._stalled = f"no new keys confirmed within {FIRST_WAIT:g} s"
            if not self._keys:
                raise DeliveryFailed(
                    f"no data key ready to seal a new message with ({self._stalled}); "
                    "the log is not taking key records: retry later"
                )
            return self._keys.popleft()

    def clear(self) -> None:
        """Forget the keys made (another key store is used from now on)."""
        with self._changed:
            self._keys.clear()
            self._stalled = None
            self._filling = False
            self._generation += 1

    def _refill(self, store: KeyMaker, generation: int) -> None:
        made: list[tuple[str, AESGCM]] = []
        stalled = None
        try:
            made = store.create_many(MESSAGE_KEYS.rstrip(":"), POOL_SIZE)
        except Exception as exc:  # the broker away (DeliveryFailed), or not reachable at all
            log.warning("per-message keys not made: %s", exc)
            stalled = f"{type(exc).__name__}: {exc}"
        with self._changed:
            if generation != self._generation:
                return  # made by the store used before `clear`
            self._keys.extend(made)
            self._filling = False
            self._stalled = stalled
            self._changed.notify_all()
