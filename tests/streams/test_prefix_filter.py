"""The prefix filter in front of the key cache file: never "no" for a prefix it was given."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from streams.privacy.prefix_filter import PrefixFilter


@given(st.lists(st.text(min_size=1, max_size=80), max_size=300))
def test_every_prefix_added_is_a_maybe(prefixes: list[str]) -> None:
    kept = PrefixFilter(len(prefixes), prefixes)
    assert all(prefix in kept for prefix in prefixes)


def test_about_one_absent_prefix_in_a_hundred_is_a_maybe() -> None:
    kept = PrefixFilter(20_000, (f"patient:{uuid.uuid4().hex}" for _ in range(20_000)))
    assert not kept.full
    maybes = sum(f"patient:{uuid.uuid4().hex}" in kept for _ in range(20_000))
    assert maybes < 20_000 * 0.02, maybes  # 1% expected


def test_full_past_its_capacity() -> None:
    kept = PrefixFilter(1024)
    for n in range(1025):
        kept.add(f"patient:{n}")
    assert kept.full and all(f"patient:{n}" in kept for n in range(1025))
