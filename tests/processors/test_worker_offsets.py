"""The worker's consumer commits a transactional input past its transaction markers."""

from __future__ import annotations

import asyncio
from typing import Any

from faust.types import TP


def _consumer() -> Any:
    from processors.worker import app

    return app.consumer


def test_a_gap_of_markers_does_not_stop_the_commit_at_the_record_after_it() -> None:
    # Records at 10, 13, 14; offsets 11 and 12 are transaction markers (never delivered).
    consumer = _consumer()
    tp = TP("carelog.fhir.translated", 0)
    consumer._committed_offset[tp] = 10
    for offset in (10, 13, 14):
        consumer._acked[tp].append(offset)
        consumer._acked_index[tp].add(offset)
    # What Faust's fetch loop does on reading 13 right after 10: the gap is 11..13.
    asyncio.run(consumer._add_gap(tp, 11, 13))

    assert consumer._new_offset(tp) == 15
    assert list(consumer._acked[tp]) == []


def test_commits_keep_up_with_a_marker_after_every_record() -> None:
    consumer = _consumer()
    tp = TP("carelog.fhir.translated", 1)
    consumer._committed_offset[tp] = 0
    records = list(range(0, 200, 2))  # a record, then a marker, 100 times
    previous = None
    for offset in records:
        if previous is not None:
            asyncio.run(consumer._add_gap(tp, previous + 1, offset))
        consumer._acked[tp].append(offset)
        consumer._acked_index[tp].add(offset)
        previous = offset

    assert consumer._new_offset(tp) == records[-1] + 1
