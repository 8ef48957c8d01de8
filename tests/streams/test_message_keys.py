"""The per-message key pool refills in a thread and never holds its caller on the broker."""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from streams.errors import DeliveryFailed
from streams.privacy import message_keys
from streams.privacy.aead import new_key
from streams.privacy.message_keys import POOL_SIZE, REFILL_BELOW, MessageKeys


class Maker:
    """Makes keys as KafkaKeyStore.create_many does, from the thread that asks; `gate` holds
    it (the broker not confirming), `fail` makes it raise as a failed confirmation does."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.threads: list[str] = []
        self.made = 0

    def create_many(self, kind: str, count: int) -> list[tuple[str, AESGCM]]:
        self.threads.append(threading.current_thread().name)
        self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.made += count
        return [(f"{kind}:{self.made - i}", AESGCM(new_key())) for i in range(count)]


def test_keys_are_made_ahead_in_a_thread_of_their_own() -> None:
    maker, pool = Maker(), MessageKeys()
    taken = {pool.take(maker)[0] for _ in range(POOL_SIZE * 3)}
    assert len(taken) == POOL_SIZE * 3  # every key once
    assert maker.made >= POOL_SIZE * 3
    assert set(maker.threads) == {"carelog-message-keys"}  # never made by the caller


def test_a_refill_starts_while_keys_are_left() -> None:
    maker, pool = Maker(), MessageKeys()
    pool.take(maker)  # the first fill
    for _ in range(POOL_SIZE - REFILL_BELOW):
        pool.take(maker)
    deadline = time.monotonic() + 5
    while maker.made < 2 * POOL_SIZE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert maker.made == 2 * POOL_SIZE  # refilled before the pool ran dry


def test_while_keys_are_not_confirmed_the_caller_waits_once_then_fails_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(message_keys, "FIRST_WAIT", 0.3)
    maker, pool = Maker(), MessageKeys()
    pool.take(maker)  # the first fill
    maker.gate.clear()  # the broker stops confirming: the refill that starts hangs
    for _ in range(POOL_SIZE - 1):  # the rest of the fill, without waiting
        pool.take(maker)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed, match="no data key ready"):
        pool.take(maker)
    assert 0.25 < time.monotonic() - started < 2.0  # the one wait, bounded
    for _ in range(20):  # every later message: refused without waiting
        started = time.monotonic()
        with pytest.raises(DeliveryFailed, match=r"within 0\.3 s"):
            pool.take(maker)
        assert time.monotonic() - started < 0.05
    maker.gate.set()  # the broker is back: the refill in flight lands
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            assert pool.take(maker)[0].startswith("msg:")
            break
        except DeliveryFailed:
            time.sleep(0.01)
    else:
        pytest.fail("no key after the broker came back")


def test_a_failed_refill_is_named_and_the_next_one_recovers() -> None:
    maker, pool = Maker(), MessageKeys()
    maker.fail = DeliveryFailed("1 not confirmed within 30 s")
    with pytest.raises(DeliveryFailed, match="not confirmed within 30 s"):
        pool.take(maker)
    maker.fail = None
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the failed take started another refill
        try:
            pool.take(maker)
            return
        except DeliveryFailed:
            time.sleep(0.01)
    pytest.fail("no key after the refills succeeded again")


def test_keys_of_a_store_no_longer_used_are_never_handed_out() -> None:
    old, new, pool = Maker(), Maker(), MessageKeys()
    pool.take(old)
    old.gate.clear()
    for _ in range(POOL_SIZE - REFILL_BELOW):  # a refill from `old` starts and hangs
        pool.take(old)
    pool.clear()  # envelope.install: another store from now on
    old.gate.set()  # the old refill lands after the switch
    time.sleep(0.2)
    new.made = 10_000  # ids of its own
    assert all(int(pool.take(new)[0].split(":")[1]) > 9_000 for _ in range(POOL_SIZE))
