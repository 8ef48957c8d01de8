"""A batch larger than the reader's (changes held for a catch-up, then the new ones) is
committed in parts: each part's positions say exactly which changes the tables hold after it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.lake.changes import Batch, Change, split

TOPIC = "t"


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    """Changes of up to three partitions interleaved, each in log order with gaps (skipped
    events, transaction markers), read up to at or past each partition's last change."""
    streams: dict[int, list[int]] = {}
    read_up_to = {}
    for partition in range(draw(st.integers(1, 3))):
        offsets = sorted(draw(st.sets(st.integers(0, 500), max_size=40)))
        streams[partition] = offsets
        last = offsets[-1] if offsets else draw(st.integers(0, 500))
        read_up_to[(TOPIC, partition)] = last + draw(st.integers(0, 3))
    order = draw(st.permutations([p for p, offsets in streams.items() for _ in offsets]))
    taken = dict.fromkeys(streams, 0)
    changes = []
    for partition in order:
        changes.append(Change({}, TOPIC, partition, streams[partition][taken[partition]]))
        taken[partition] += 1
    return Batch(changes, read_up_to, skipped=draw(st.integers(0, 5)))


@given(batches(), st.integers(1, 50))
def test_each_part_is_read_up_to_exactly_what_the_parts_so_far_hold(
    batch: Batch, most: int
) -> None:
    parts = split(batch, most)
    assert [c for part in parts for c in part.changes] == batch.changes
    assert all(len(part.changes) <= most for part in parts)
    assert parts[-1].read_up_to == batch.read_up_to
    assert sum(part.skipped for part in parts) == batch.skipped
    held: list[Change] = []
    before = {tp: -1 for tp in batch.read_up_to}
    for part in parts:
        held += part.changes
        assert set(part.read_up_to) == set(batch.read_up_to)
        for tp, upto in part.read_up_to.items():
            assert upto >= before[tp], "positions only grow from part to part"
            in_batch = [c for c in batch.changes if c.position == tp and c.offset <= upto]
            assert in_batch == [c for c in held if c.position == tp]
        before = part.read_up_to


def test_a_batch_within_the_limit_is_committed_as_it_is() -> None:
    batch = Batch([Change({}, TOPIC, 0, 4)], {(TOPIC, 0): 9}, skipped=2)
    assert split(batch, 1) == [batch]
