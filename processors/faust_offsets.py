"""Commit input offsets past transaction markers: Faust's gap tracking counted a record twice.

An exactly-once stage reads a topic written in transactions (carelog.fhir.translated): every
commit or abort leaves a marker that takes an offset but is never delivered, so the offsets a
consumer sees have gaps. faust-streaming records a gap as the range from the last offset read
to the offset just read, *inclusive*: the record that revealed the gap is put in the gap and,
once processed, in the acked list as well. When the gap is folded into the acked offsets the
list holds that offset twice, and `Consumer._new_offset` (runs of consecutive numbers) stops
at the duplicate: each commit could move a partition past one marker only. With six
transactional producers writing each translated partition every commit interval, the
committed offset fell further behind the whole time (a third of the topic uncommitted after
1,000 ORU^R01), the acked list Faust sorts on every commit grew, and a restarted worker read
the uncommitted tail again: the worker's CPU per message grew from run to run on one broker.
(The same duplicate was reported upstream as robinhood/faust#625.)

Here a gap ends before the record that revealed it.
"""

from __future__ import annotations

from faust.transport.drivers.aiokafka import Consumer
from faust.types import TP

from processors.patched_shapes import require_source

# _add_gap below shifts the range Faust's own _add_gap records; _new_offset is what folds the
# gaps into the acked offsets. Either changing upstream must be looked at again.
require_source(Consumer, "_add_gap", "4df2573ded7c1c2c", __name__)
require_source(Consumer, "_new_offset", "1d2c7ea89a7ad4f1", __name__)


class MarkerGapConsumer(Consumer):
    async def _add_gap(self, tp: TP, offset_from: int, offset_to: int) -> None:
        # Faust passes the offset of the record just read as offset_to; that record is
        # acknowledged on its own once processed, so it is not part of the gap.
        await super()._add_gap(tp, offset_from, offset_to - 1)
