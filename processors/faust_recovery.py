"""After a rebalance, seek the stream partitions before resuming them: no message is lost.

faust-streaming's Recovery.on_recovery_completed resumes the stream partitions and only
then awaits the seek to their committed offsets. In between, the fetcher (already running
for the changelogs) fetches stream messages from wherever the consumer stood. Those are
handed to the streams while the consumer's read offsets are being reset, and when the
partition is fetched again from the committed offset the first message(s) are taken for
already read ("DROPPED MESSAGE") although nothing processed them; since Faust's own gap
check lets a commit skip exactly one missing offset at the head, the next commit moves past
the message. Seen in tests/system/test_faults.py: a worker SIGKILLed under load and
restarted lost the first message after the committed offset of one input partition (it was
acknowledged to its sender, on carelog.inbound.*, and never translated).

Here the seek happens while the stream partitions are still paused, and the acks the
consumer holds for them are forgotten (everything from the committed offset on is read and
processed again; downstream, versioning ignores a redelivered input). Resuming the
partitions, the flow and the fetcher then follows without a pause in which to fetch.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.types import TP

from processors.patched_shapes import require_names, require_source

_PATCHED = "_carelog_seek_before_resume"
_ACK_RECORDS = ("_acked", "_acked_index", "_gap")

# on_recovery_completed below is faust-streaming's, reordered: it replaces that source.
if not getattr(Recovery, _PATCHED, False):
    require_source(Recovery, "on_recovery_completed", "6ef567acf072e46d", __name__)
require_names(Consumer, "__init__", _ACK_RECORDS, __name__)


def _forget_acks(consumer: Any, tps: set[TP]) -> None:
    """Drop the consumer's record of acked / skipped offsets of `tps`: after a seek to the
    committed offsets they are read again and acknowledged anew."""
    for name in _ACK_RECORDS:
        held = getattr(consumer, name, None)
        if held is not None:
            for tp in tps:
                held.pop(tp, None)


async def on_recovery_completed(self: Recovery, generation_id: int = 0) -> None:
    """Recovery.on_recovery_completed with the seek before the resume (see module doc)."""
    app = cast(Any, self.app)
    consumer = app.consumer
    self.log.info("Restore complete!")
    await app.on_rebalance_complete.send()
    self._set_recovery_ended()
    callback_coros = [
        asyncio.ensure_future(
            table.on_recovery_completed(
                self.actives_for_table[table], self.standbys_for_table[table]
            )
        )
        for table in self.tables.values()
    ]
    if callback_coros:
        await asyncio.wait(callback_coros)
    assignment = consumer.assignment()
    if app.consumer_generation_id != generation_id:
        self.log.warning(
            f"Recovery rebalancing again app id {app.consumer_generation_id} param {generation_id}"
        )
        return
    streams = {tp for tp in assignment if not self._is_changelog_tp(tp)}
    if assignment:
        self.log.info("Seek stream partitions to committed offsets (still paused).")
        await self._wait(consumer.perform_seek(), timeout=app.conf.broker_request_timeout)
        if app.consumer_generation_id != generation_id:
            self.log.warning("Recovery rebalancing again after the seek")
            return
        _forget_acks(consumer, streams)
    # From here to the fetcher's start nothing awaits: no fetch slips in between.
    consumer.resume_partitions(streams)
    self.completed.set()
    app.flow_control.resume()
    consumer.resume_flow()
    await app._fetcher.maybe_start()
    self.tables.on_actives_ready()
    if not app.assignor.assigned_standbys():
        self.tables.on_standbys_ready()
    app.on_rebalance_end()
    self.log.info("Worker ready")


def seek_before_resume() -> None:
    """Install the patched Recovery.on_recovery_completed (once per process)."""
    if not getattr(Recovery, _PATCHED, False):
        Recovery.on_recovery_completed = on_recovery_completed  # type: ignore[method-assign]
        setattr(Recovery, _PATCHED, True)
