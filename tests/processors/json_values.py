"""A hypothesis strategy for any JSON value, for the tests that feed inputs arbitrary JSON."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_values(key_size: int) -> st.SearchStrategy[Any]:
    """Any JSON value (as orjson parses it: 64-bit integers, finite floats), up to 30 leaves,
    object keys up to `key_size` characters."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=key_size), inner, max_size=5)
        ),
        max_leaves=30,
    )
