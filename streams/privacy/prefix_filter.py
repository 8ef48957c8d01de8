"""Which patients may have a key in a process's key cache file: a Bloom filter in memory.

A new patient's first message asks every process that seals (the edge, the worker) whether
the patient has a key; nearly always the answer is no, and the cache file answered it with
a B-tree seek. Python's sqlite3 lets go of the interpreter lock around every statement, and
getting it back waits for the process's other threads (the worker's consumer thread, the key
readers): about 5 µs alone, 2-3 ms beside one busy thread (tests/bench/bench_key_lookups.py). The
filter answers "certainly not" in memory; "maybe" (1% of absent prefixes, and every present
one) still asks the file. A shredded key's prefix stays in the filter: a false "maybe", not
a wrong answer.

Every process adds each patient key it reads, so the filter is rbloom's, in native code: a
prefix added or looked up in about 0.1 µs, where hashing it seven times in Python took 2-3.
"""

from __future__ import annotations

from collections.abc import Iterable

from rbloom import Bloom

FALSE_MAYBE = 0.01


class PrefixFilter:
    def __init__(self, capacity: int, prefixes: Iterable[str] = ()) -> None:
        """Room for `capacity` prefixes at FALSE_MAYBE; more make it answer "maybe" more often
        (`full` says when to make a bigger one)."""
        self.capacity = max(1024, capacity)
        # Python's own string hash (SipHash, keyed per process, kept on the string once
        # made): the filter lives and dies with its process.
        self._bloom = Bloom(self.capacity, FALSE_MAYBE)
        self.count = 0
        for prefix in prefixes:
            self.add(prefix)

    def add(self, prefix: str) -> None:
        self._bloom.add(prefix)
        self.count += 1

    def __contains__(self, prefix: object) -> bool:
        return isinstance(prefix, str) and prefix in self._bloom

    @property
    def full(self) -> bool:
        return self.count > self.capacity
