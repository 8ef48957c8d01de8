"""Exactly-once across a re-keying step: outputs join the transaction of the input partition.

Faust's exactly-once mode runs one transactional producer per assigned input partition and
commits each one's input offsets in its own transaction. But its TransactionManager picks the
producer for an output by the *output* partition, which is only right when outputs are
co-partitioned with inputs. carelog's translate stage re-keys (inbound key -> ResourceType/id),
so an output could land in the transaction of a partition whose offsets never move, and stay
uncommitted (invisible to read_committed readers) until the transaction times out.

Here the producer is picked by the partition of the event being processed, so an event's
outputs and its offset commit (or abort) together, whatever partitions the outputs go to.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Mapping
from typing import Any, cast

import faust
from aiokafka.errors import KafkaError, ProducerFenced
from faust.exceptions import ProducerSendError
from faust.transport.consumer import TransactionManager
from faust.transport.drivers.aiokafka import Producer, Transport
from faust.types import TP, RecordMetadata

from processors.faust_delivery import DirectDeliveryConsumer
from processors.faust_fetch_wait import ShortFetchWaitConsumer
from processors.faust_offsets import MarkerGapConsumer
from processors.patched_shapes import require_source
from processors.version_first import HeldPartitions
from streams.privacy.envelope import confirm_new_keys, keys_to_confirm

# send below overrides TransactionManager.send (falling back to it outside agents) and does
# what the aiokafka driver's Producer.send does with a transactional_id of its own choosing.
require_source(TransactionManager, "send", "b8d126be9f10fc69", __name__)
require_source(Producer, "send", "0b5bd08f52e5e2a9", __name__)
# commit below replaces TransactionManager.commit and the driver's Producer.commit_transactions
# it calls, adding one step: the data keys go on the log before each transaction commits.
require_source(TransactionManager, "commit", "fbb29c3467ac8bfa", __name__)
require_source(Producer, "commit_transactions", "70091e6f431974e9", __name__)

log = logging.getLogger(__name__)


class SourcePartitionTransactions(TransactionManager):
    _ids: dict[TP, str] | None = None
    # Records sent in each open transaction, by topic: what readers cannot see yet.
    _open: dict[str, Counter[str]] | None = None

    def uncommitted(self, topic: str) -> int:
        """Records this worker sent to `topic` in transactions not committed yet."""
        return sum(sent[topic] for sent in (self._open or {}).values())

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP]
    ) -> None:
        self._open = None  # a rebalance ends every open transaction: committed or aborted
        await super().on_rebalance(assigned, revoked, newly_assigned)

    async def send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        timestamp: float | None,
        headers: Any,
        *,
        transactional_id: str | None = None,
    ) -> Awaitable[RecordMetadata]:
        event = faust.current_event()
        if event is None:  # not inside an agent: Faust's own rule
            return await super().send(topic, key, value, partition, timestamp, headers)
        transactional_id = self._transactional_id(event.message.tp)
        # What the driver's Producer.send does for a transactional send, less its per-record
        # extras (a produce signal nobody receives, header conversions, attribute lookups
        # through Faust's settings): the record joins the transaction under its lock.
        producer = cast(Producer, self.producer)
        transaction = producer._transaction_producers.get(transactional_id)
        if transaction is None:
            raise ProducerSendError(f"No transaction producer found for : {transactional_id}")
        timestamp_ms = int(timestamp * 1000.0) if timestamp else None
        if self._open is None:
            self._open = {}
        sent = self._open.get(transactional_id)
        if sent is None:
            sent = self._open[transactional_id] = Counter()
        try:
            async with producer._trn_locks[transactional_id]:
                sent[topic] += 1
                return cast(
                    Awaitable[RecordMetadata],
                    await transaction.send(
                        topic,
                        value,
                        key=key,
                        partition=partition,  # None: the producer's partitioner
                        timestamp_ms=timestamp_ms,
                        headers=headers,
                    ),
                )
        except KafkaError as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc

    async def commit(self, offsets: Mapping[TP, int], start_new_transaction: bool = True) -> bool:
        """Faust's commit, one transaction after the other, each with its input offsets."""
        by_transaction: dict[str, dict[TP, int]] = {}
        for tp, offset in offsets.items():
            by_transaction.setdefault(self._transactional_id(tp), {})[tp] = offset
        try:
            for transactional_id, tp_offsets in by_transaction.items():
                await self._commit_one(transactional_id, tp_offsets, start_new_transaction)
        except ProducerFenced as fenced:
            log.warning("ProducerFenced %s", fenced)
            await self.app.crash(fenced)
        return True

    async def _commit_one(
        self, transactional_id: str, offsets: Mapping[TP, int], start_new_transaction: bool
    ) -> None:
        producer = cast(Producer, self.producer)
        async with producer._trn_locks[transactional_id]:  # nothing joins it from here on
            transaction = producer._transaction_producers.get(transactional_id)
            if transaction is None:
                log.warning("Commit invoked for unknown transaction %s", transactional_id)
                return
            # Every record in this transaction was sealed before it was sent: the data keys
            # made so far go on the log before the records become readable. One wait for
            # all the patients new since the last commit, not one per patient, and none
            # when no key was made (streams/privacy/keystore.py).
            if keys_to_confirm():
                await asyncio.to_thread(confirm_new_keys)
            await transaction.send_offsets_to_transaction(offsets, self.app.conf.id)
            await transaction.commit_transaction()
            if self._open is not None:
                self._open.pop(transactional_id, None)
            if start_new_transaction:
                await transaction.begin_transaction()

    def _transactional_id(self, source: TP) -> str:
        """The id of the transaction of input partition `source` (computed once each)."""
        ids = self._ids
        if ids is None:
            ids = self._ids = {}
        found = ids.get(source)
        if found is None:
            group = self.app.assignor.group_for_topic(source.topic)
            found = ids[source] = f"{self.app.conf.id}-{group}-{source.partition}"
        return found


class WorkerConsumer(
    DirectDeliveryConsumer, HeldPartitions, ShortFetchWaitConsumer, MarkerGapConsumer
):
    """Commits past transaction markers (processors/faust_offsets.py), delivers fetched
    messages without a task each (processors/faust_delivery.py), holds inbound partitions
    for version_first (processors/version_first.py), and has the broker answer a fetch with
    nothing new within 0.1 s (processors/faust_fetch_wait.py)."""


class SourcePartitionTransport(Transport):
    TransactionManager = SourcePartitionTransactions
    Consumer = WorkerConsumer


def use_source_partition_transactions(app: faust.App) -> None:
    """Call right after creating the app, before declaring topics, agents or tables."""
    app.transport = SourcePartitionTransport(app.conf.broker_consumer, app)
