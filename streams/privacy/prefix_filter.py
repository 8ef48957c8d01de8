"""Which patients may have a key in a process's key cache file: a Bloom filter in memory.

A new patient's first message asks every process that seals (the edge, the worker) whether
the patient has a key; nearly always the answer is no, and the cache file answered it with
a B-tree seek. Python's sqlite3 lets go of the interpreter lock around every statement, and
getting it back waits for the process's other threads (the worker's consumer thread, the key
readers): about 5 µs alone, 2-3 ms beside one busy thread (tests/bench/bench_key_lookups.py). The
filter answers "certainly not" in memory; "maybe" (1% of absent prefixes, and every present
one) still asks the file. A shredded key's prefix stays in the filter: a false "maybe", not
a wrong answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

FALSE_MAYBE = 0.01
_HASHES = 7  # the best count for 1%: -log2(0.01)


class PrefixFilter:
    def __init__(self, capacity: int, prefixes: Iterable[str] = ()) -> None:
        """Room for `capacity` prefixes at FALSE_MAYBE; more make it answer "maybe" more often
        (`full` says when to make a bigger one)."""
        self.capacity = max(1024, capacity)
        self._bits_count = math.ceil(-self.capacity * math.log(FALSE_MAYBE) / math.log(2) ** 2)
        self._bits = bytearray((self._bits_count + 7) // 8)
        self.count = 0
        for prefix in prefixes:
            self.add(prefix)

    def _positions(self, prefix: str) -> list[int]:
        # Python's own string hash (SipHash, keyed per process, kept on the string once
        # made): the filter lives and dies with its process. Two halves of it make the
        # positions (Kirsch and Mitzenmacher's double hashing).
        hashed = hash(prefix) & 0xFFFF_FFFF_FFFF_FFFF
        first, step = hashed & 0xFFFF_FFFF, (hashed >> 32) | 1
        return [(first + i * step) % self._bits_count for i in range(_HASHES)]

    def add(self, prefix: str) -> None:
        for at in self._positions(prefix):
            self._bits[at >> 3] |= 1 << (at & 7)
        self.count += 1

    def __contains__(self, prefix: object) -> bool:
        if not isinstance(prefix, str):
            return False
        return all(self._bits[at >> 3] & (1 << (at & 7)) for at in self._positions(prefix))

    @property
    def full(self) -> bool:
        return self.count > self.capacity
