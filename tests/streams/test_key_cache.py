"""A process's local copy of carelog.keys (streams/privacy/key_cache.py): what it keeps,
when it is thrown away, and that a shredded key's bytes leave the file."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from streams.privacy.key_cache import KeyCache, forget_in_every_copy

DAY = 86_400.0


def _cache(path: Path, topic_id: str | None = "t1", max_age: float = DAY) -> KeyCache:
    return KeyCache(path, "carelog.keys", topic_id, max_age)


def _files(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.iterdir() if p.is_file())


def test_keys_and_position_survive_a_restart(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    assert cache.position == 0 and len(cache) == 0
    cache.write([("patient:p1/a", b"w1"), ("patient:p1/b", b"w2"), ("resource:Org/c", b"w3")], 3)
    cache.close()
    again = _cache(tmp_path)
    assert again.position == 3
    assert again.get("patient:p1/a") == b"w1" and again.get("patient:p9/a") is None
    assert again.under("patient:p1") == ["patient:p1/a", "patient:p1/b"]
    assert again.under("patient:p") == []  # a prefix is a whole patient, not a start
    again.close()


@pytest.mark.parametrize(
    "topic_id,max_age,why",
    [("t2", DAY, "the topic was made again"), (None, DAY, "no topic id"),
     ("t1", 0.0, "older than the topic keeps tombstones")],
)  # fmt: skip
def test_a_copy_that_may_not_match_the_topic_is_read_again(
    tmp_path: Path, topic_id: str | None, max_age: float, why: str
) -> None:
    cache = _cache(tmp_path)
    cache.write([("patient:p1/a", b"w1")], 1)
    cache.close()
    time.sleep(0.01)
    again = _cache(tmp_path, topic_id, max_age)
    assert (again.position, len(again)) == (0, 0), why
    again.close()


def test_a_shredded_keys_bytes_leave_the_files(tmp_path: Path) -> None:
    secret = os.urandom(60)  # a wrapped key: random bytes, found only where it was written
    cache = _cache(tmp_path)
    cache.write([(f"patient:p{i}/k", os.urandom(60)) for i in range(500)], 500)
    cache.write([("patient:erased/k", secret)], 501)
    cache.close()  # a key read long ago: in the database file itself by now
    cache = _cache(tmp_path)
    assert secret in _files(tmp_path)
    cache.write([("patient:erased/k", None)], 502)
    assert cache.get("patient:erased/k") is None
    assert secret not in _files(tmp_path)
    cache.close()
    assert secret not in _files(tmp_path)


def test_each_process_has_a_file_of_its_own(tmp_path: Path) -> None:
    first, second = _cache(tmp_path), _cache(tmp_path)
    assert first.path != second.path
    first.write([("patient:p1/a", b"w1")], 1)
    assert second.get("patient:p1/a") is None
    second.close()
    third = _cache(tmp_path)  # the slot the second let go
    assert third.path == second.path
    first.close()
    third.close()


def test_a_damaged_file_is_read_again_from_the_topic(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.write([("patient:p1/a", b"w1")], 1)
    assert cache.path is not None
    path = cache.path
    cache.close()
    path.write_bytes(b"not sqlite at all" * 100)
    again = _cache(tmp_path)
    assert (again.position, len(again)) == (0, 0)
    again.close()


def test_in_memory_when_no_directory() -> None:
    cache = KeyCache(None, "carelog.keys", "t1", DAY)
    cache.write([("patient:p1/a", b"w1")], 1)
    assert cache.path is None and cache.get("patient:p1/a") == b"w1"
    cache.close()


def test_the_first_key_of_a_patient(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    cache.write([("patient:p1/b", b"w2"), ("patient:p1/a", b"w1"), ("patient:p10/a", b"w3")], 3)
    assert cache.first_under("patient:p1") == ("patient:p1/a", b"w1")
    assert cache.first_under("patient:p2") is None
    cache.close()


def test_a_file_of_another_layout_is_made_again(tmp_path: Path) -> None:
    cache = _cache(tmp_path)
    assert cache.path is not None
    path = cache.path
    cache.close()
    db = sqlite3.connect(path)
    db.executescript("DROP TABLE keys; CREATE TABLE keys (key_id, prefix, wrapped);")
    db.execute("PRAGMA user_version = 0")
    db.close()
    again = _cache(tmp_path)
    again.write([("patient:p1/a", b"w1")], 1)
    assert again.first_under("patient:p1") == ("patient:p1/a", b"w1")
    again.close()


def test_an_erasure_takes_a_shredded_key_out_of_every_copy(tmp_path: Path) -> None:
    """A stopped process reads the shred only when it starts again: `carelog erase` deletes
    the key from its copy (and from a running one's, which would do it itself)."""
    secret, kept = os.urandom(60), os.urandom(60)
    stopped = _cache(tmp_path)
    running = _cache(tmp_path)  # the second process: a file of its own
    for cache in (stopped, running):
        cache.write([(f"patient:p{i}/k", os.urandom(60)) for i in range(200)], 200)
        cache.write([("patient:erased/k", secret), ("patient:kept/k", kept)], 202)
    stopped.close()
    (tmp_path / "other.sqlite").write_bytes(b"not a database")  # left alone, not fatal
    assert _files(tmp_path).count(secret) >= 2

    assert forget_in_every_copy(tmp_path, ["patient:erased/k", "msg:never-cached"]) == 2
    assert secret not in _files(tmp_path) and kept in _files(tmp_path)
    assert running.get("patient:erased/k") is None and running.get("patient:kept/k") == kept
    running.close()
    again = _cache(tmp_path)
    assert again.get("patient:erased/k") is None and again.position == 202
    again.close()
