"""A worker whose group was assigned while the broker had not loaded its topics rejoins when
they are back, instead of idling with no partitions.

A restarted broker can answer a join before its topics are known: Faust's assignor then logs
"Ignoring missing topic" and gives nobody those partitions. aiokafka rejoins by itself when a
metadata refresh shows partitions its last assignment lacked, but refreshes every 5 minutes,
and a fault test once saw a worker stay with no partitions for 150 s even with a 10 s
refresh. So the assignor remembers the topics it had to leave out, and a timer on the worker
refreshes the metadata every few seconds while any is missing, and asks for a rejoin as soon
as one has partitions again. A healthy assignment leaves nothing out, so a worker idle for
want of partitions (more workers than partitions) never rejoins because of this.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
from faust.assignor import PartitionAssignor

log = logging.getLogger(__name__)
CHECK_SECONDS = 5.0


class RememberingAssignor(PartitionAssignor):
    """Faust's assignor, noting which subscribed topics it found no partitions for."""

    left_out: frozenset[str] = frozenset()

    def assign(self, cluster: Any, member_metadata: Any) -> Any:
        subscribed = {t for m in member_metadata.values() for t in m.subscription}
        self.left_out = frozenset(t for t in subscribed if not cluster.partitions_for_topic(t))
        return super().assign(cluster, member_metadata)


async def _rejoin_if_back(aio: Any, assignor: RememberingAssignor) -> None:
    """In the consumer's thread: refresh the metadata; rejoin if a left-out topic is back."""
    await aio._client.force_metadata_update()
    back = sorted(t for t in assignor.left_out if aio._client.cluster.partitions_for_topic(t))
    if back:
        log.warning("topics %s had no partitions when the group was assigned and have now: "
                    "rejoining the group", back)  # fmt: skip
        assignor.left_out = frozenset()
        aio._coordinator.request_rejoin()


def rejoin_when_topics_return(app: faust.App) -> None:
    """Register the check on `app`, made with `PartitionAssignor=RememberingAssignor`."""
    assignor: Any = app.assignor
    if not isinstance(assignor, RememberingAssignor):
        raise TypeError("make the app with PartitionAssignor=RememberingAssignor")

    async def rejoin_when_topics_return() -> None:
        while not app.should_stop:
            await asyncio.sleep(CHECK_SECONDS)
            if assignor.left_out:
                consumer: Any = app.consumer
                thread = consumer._thread  # aiokafka's consumer runs on a thread of its own
                await thread.call_thread(_rejoin_if_back, thread._ensure_consumer(), assignor)

    app.task(rejoin_when_topics_return)
