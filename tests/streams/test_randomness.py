"""Nonces and keys come from a pool of OS randomness: never the same bytes twice, not even
in a forked child (a nonce used twice with one AES-GCM key gives the key away)."""

from __future__ import annotations

import os

from streams.privacy.aead import random_bytes


def test_no_nonce_twice_across_many_pools() -> None:
    nonces = [random_bytes(12) for _ in range(5_000)]  # about 15 pools of 4 KB
    assert len(set(nonces)) == len(nonces)


def test_a_forked_child_does_not_take_its_parents_next_bytes() -> None:
    random_bytes(12)  # the pool is drawn, with bytes left in it
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, random_bytes(12))
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 12)
    os.close(read)
    assert len(theirs) == 12 and theirs != random_bytes(12)
