"""What a process pays to look up and keep data keys (streams/privacy/): the key cache file
alone and beside one busy Python thread, the prefix filter that stands in front of it, and
writing key records to the file in batches.

A sqlite3 statement lets go of the interpreter lock; with another thread wanting it (the
worker's consumer thread, the key readers), getting it back can wait a switch interval. The
key store therefore answers a new patient's lookup from memory (prefix_filter.py).

Run: .venv/bin/python -m tests.bench.bench_key_lookups
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from streams.privacy.key_cache import KeyCache
from streams.privacy.prefix_filter import PrefixFilter

KEYS = 200_000
LOOKUPS = 2_000


def _records(count: int) -> list[tuple[str, bytes | None]]:
    return [(f"patient:{uuid.uuid4().hex}/{uuid.uuid4().hex[:12]}", os.urandom(60))
            for _ in range(count)]  # fmt: skip


def _us_each(work: Callable[[str], object], prefixes: list[str]) -> float:
    started = time.perf_counter()
    for prefix in prefixes:
        work(prefix)
    return (time.perf_counter() - started) / len(prefixes) * 1e6


def _beside_a_busy_thread(work: Callable[[str], object], prefixes: list[str]) -> float:
    stop = threading.Event()

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    busy = threading.Thread(target=spin, daemon=True)
    busy.start()
    try:
        return _us_each(work, prefixes)
    finally:
        stop.set()
        busy.join()


def main() -> None:
    cache = KeyCache(Path(tempfile.mkdtemp()), "carelog.keys", "bench", 1e9)
    position = 0
    for _ in range(KEYS // 10_000):
        position += 10_000
        cache.write(_records(10_000), position)
    kept = PrefixFilter(2 * len(cache), cache.prefixes())
    absent = [f"patient:{uuid.uuid4().hex}" for _ in range(LOOKUPS)]
    print(f"{len(cache):,} keys in the file; a lookup of a patient with no key, wall µs:")
    print(f"  cache file, alone                    {_us_each(cache.first_under, absent):9.1f}")
    print(f"  cache file, beside one busy thread   "
          f"{_beside_a_busy_thread(cache.first_under, absent[:200]):9.1f}")  # fmt: skip
    contains: Callable[[str], object] = kept.__contains__
    print(f"  prefix filter, beside one busy thread {_beside_a_busy_thread(contains, absent):8.1f}")
    print("writing key records to the file (in key order), CPU µs a key:")
    for size in (1, 100, 1_000):
        batches = [_records(size) for _ in range(max(1, 4_000 // size))]
        started = time.process_time()
        for batch in batches:
            position += size
            cache.write(batch, position)
        spent = (time.process_time() - started) / sum(map(len, batches)) * 1e6
        print(f"  batches of {size:>5}: {spent:9.1f}")
    cache.close()


if __name__ == "__main__":
    main()
