"""`carelog sink`: a consumer-group member folding carelog.fhir.changes into Delta tables.

Micro-batches (streams/consumer.py) close by count or by time, whichever comes first, or at
once when a read finds the log drained. Each batch is written to bronze and to every silver
table, side by side, each commit carrying the Kafka positions it reflects
(projections/lake/offsets.py). A crash between two commits leaves some tables ahead of
others; on restart every table skips what it holds, so nothing is written twice or lost, and
the tables behind first commit up to exactly the leading table's position, so that any
position the tables hold opens a consistent set of versions (projections/lake/as_of.py).
A table that a batch does not touch (no Conditions came) still records its position now and
then with an empty commit, so that a restart does not re-read the log from far behind.
"""

from __future__ import annotations

import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, DeltaError

from projections.lake import bronze, consent, silver
from projections.lake.changes import (
    Batch,
    Change,
    by_resource_type,
    decode_batch,
    first_offsets,
    not_shredded,
    shredded_resources,
    split,
    unseen,
)
from projections.lake.deidentify import Deidentifier
from projections.lake.errors import LakeError
from projections.lake.offsets import Positions, commit_properties, resume_offsets, table_positions
from projections.lake.purge import COMMIT_RETRIES, purge_resources
from projections.lake.tables import BRONZE, Lake
from projections.lake.views import SHIPPED_VIEWS, SYSTEM_FIELDS, View, load_views
from streams.admin import admin_client
from streams.consumer import BatchLimits, BatchReader
from streams.kafka_config import consumer_config
from streams.lag import partitions_of, watermarks
from streams.settings import Settings, get_settings
from streams.topics import FHIR_CHANGES
from streams.unreachable import until_reachable

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 10.0
HOLD_BATCHES = 4  # how many batches' worth of changes behind a table catching up may be
SYSTEM_COLUMNS = tuple(f.name for f in SYSTEM_FIELDS)  # a silver table's statistics
COMMIT_THREADS = 2  # tables committed at once (Delta's Rust side runs without the GIL)


@dataclass
class Target:
    """One table the sink writes, and the positions it holds."""

    name: str
    table: DeltaTable
    write: Callable[[DeltaTable, list[Change], Positions], int]  # returns rows written
    resource: str | None  # the resource type of a silver table's view; None: every change
    positions: Positions = field(default_factory=dict)
    last_commit: float = 0.0
    commits: int = 0  # since the sink started: it compacts every compact_every_commits


@dataclass
class Stats:
    assigned_at: float | None = None  # time.monotonic() when partitions first came
    last_batch_at: float | None = None  # ... and when the last batch was committed
    batches: int = 0
    changes: int = 0
    skipped: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    compactions: dict[str, int] = field(default_factory=dict)


class LakeSink:
    """Writes batches of changes to the lake's tables, exactly once per table."""

    def __init__(
        self,
        settings: Settings | None = None,
        topic: str = FHIR_CHANGES,
        views: list[View] | None = None,
        lake: Lake | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.topic = topic
        self.lake = lake or Lake.from_settings(self.settings)
        self.views = (
            views if views is not None else load_views(SHIPPED_VIEWS, self.settings.lake.views_dir)
        )
        secret = self.settings.lake.deidentify_secret
        self.deidentifier = Deidentifier(secret.get_secret_value().encode()) if secret else None
        self.stats = Stats()
        # Consents denying the lake: folded before the tables commit a batch (None: no export).
        self.denials: consent.Denials | None = None
        self.targets = self._targets()
        self._held: Batch | None = None  # changes read again below the leading table's position
        self._read: Positions = {}  # the furthest offset read of each partition since assigned
        self._committer = ThreadPoolExecutor(COMMIT_THREADS, thread_name_prefix="lake-commit")

    # -- tables -----------------------------------------------------------------------------

    def _targets(self) -> list[Target]:
        opts = self.lake.storage_options or None
        targets = [
            Target(
                BRONZE,
                self.lake.ensure(BRONZE, bronze.SCHEMA, bronze.STATS_COLUMNS, bronze.PARTITION_BY),
                self._bronze_writer(opts),
                None,
            ),
        ]
        for view in self.views:
            name = f"silver/{view.name}"
            writer = self._silver_writer(view, opts)
            table = self.lake.ensure(name, view.schema, SYSTEM_COLUMNS)
            targets.append(Target(name, table, writer, view.resource))
        if self.deidentifier is not None:
            for view in self.views:
                name = f"deidentified/silver/{view.name}"
                writer = self._silver_writer(view, opts, self.deidentifier)
                table = self.lake.ensure(name, view.schema, SYSTEM_COLUMNS)
                targets.append(Target(name, table, writer, view.resource))
            table = self.lake.ensure(consent.CONSENT_TABLE, consent.SCHEMA, SYSTEM_COLUMNS)
            targets.append(
                Target(consent.CONSENT_TABLE, table, self._consent_writer(opts), "Consent")
            )
            self.denials = consent.Denials({}, {})
        return targets

    def _bronze_writer(
        self, opts: dict[str, str] | None
    ) -> Callable[[DeltaTable, list[Change], Positions], int]:
        def write(table: DeltaTable, changes: list[Change], positions: Positions) -> int:
            rows = bronze.to_arrow(changes)
            write_deltalake(
                table,
                rows,
                mode="append",
                partition_by=bronze.PARTITION_BY,
                commit_properties=commit_properties(positions, first_offsets(changes)),
                storage_options=opts,
            )
            return int(rows.num_rows)

        return write

    def _silver_writer(
        self, view: View, opts: dict[str, str] | None, deid: Deidentifier | None = None
    ) -> Callable[[DeltaTable, list[Change], Positions], int]:
        key = deid.key(view.resource) if deid else str

        def write(table: DeltaTable, changes: list[Change], positions: Positions) -> int:
            if deid is not None:
                changes = self._consented(changes)
            flat = silver.flatten(view, changes, transform=deid, key=key)
            starts = first_offsets(changes)
            if not flat.changed_ids:
                write_deltalake(
                    table,
                    flat.rows,
                    mode="append",
                    storage_options=opts,
                    commit_properties=commit_properties(positions, starts),
                )
                return 0
            silver.write(
                table,
                view.schema,
                flat,
                commit_properties(positions, starts, view=view.fingerprint),
                opts,
            )
            return int(flat.rows.num_rows)

        return write

    def _consent_writer(
        self, opts: dict[str, str] | None
    ) -> Callable[[DeltaTable, list[Change], Positions], int]:
        def write(table: DeltaTable, changes: list[Change], positions: Positions) -> int:
            flat = consent.flatten(changes)
            commit = commit_properties(positions, first_offsets(changes))
            silver.write(table, consent.SCHEMA, flat, commit, opts)
            return int(flat.rows.num_rows)

        return write

    def _consented(self, changes: list[Change]) -> list[Change]:
        """The changes a Consent lets into the de-identified tables."""
        if self.denials is None or not self.denials.patients:
            return changes
        denied = self.denials.patients
        return [c for c in changes if not consent.belongs_to_any(c, denied)]

    def _apply_consents(self, batch: Batch) -> set[str]:
        """Fold the batch's Consents before any table commits it; the patients newly denied."""
        if self.denials is None:
            return set()
        return self.denials.apply(batch.changes, batch.read_up_to)

    def _purge_denied(self, patients: set[str]) -> None:
        """Remove what the de-identified tables hold of newly denied patients, found in
        bronze (which holds every change up to the tables' positions at this point)."""
        if not patients:
            return
        bronze_table = next(t.table for t in self.targets if t.resource is None)
        bronze_table.update_incremental()
        deidentified = [t for t in self.targets if t.name.startswith("deidentified/")]
        types = {t.resource for t in deidentified if t.resource is not None}
        resources = consent.resources_of(bronze_table, patients, types)
        deleted, files = purge_resources(deidentified, resources, self.deidentifier)
        log.info(
            "a Consent denies the lake %d more patient(s): %d resources, rows %s, %d files removed",
            len(patients),
            len(resources),
            deleted,
            files,
        )

    def load_positions(self, partitions: list[int]) -> dict[int, int | None]:
        """Refresh what each table holds; where to resume reading each partition."""
        self._held, self._read = None, {}  # the reader starts again from the tables
        for target in self.targets:
            target.table.update_incremental()
            target.positions = table_positions(target.table, self.topic, partitions)
            if target.name == consent.CONSENT_TABLE:
                self.denials = consent.Denials.load(target.table, target.positions)
        return resume_offsets([t.positions for t in self.targets], self.topic, partitions)

    # -- writing ----------------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> None:
        """Write one batch to every table, each commit with its positions.

        Each table records its own positions, so their commits are independent and overlap:
        Delta writes and merges run outside the GIL while the next table's rows are made.
        Returns once every commit is done (or raises the first failure, after the rest).

        Tables that a crash left behind the others first catch up to exactly the leading
        table's position, in a commit of their own, so that every position a table holds is
        one the others hold too (or pass with nothing of theirs in between): the same
        position opens a consistent set of versions (projections/lake/as_of.py).
        """
        self.stats.batches += 1
        self.stats.changes += len(batch.changes)
        self.stats.skipped += batch.skipped
        for tp, off in batch.read_up_to.items():
            self._read[tp] = max(off, self._read.get(tp, -1))
        if self._held is not None:
            batch = Batch(
                self._held.changes + batch.changes,
                {**self._held.read_up_to, **batch.read_up_to},
            )
            self._held = None
        lead = self._lead()
        if any(self._read.get(tp, -1) < off for tp, off in self._lagging(lead).items()):
            kept = self._needed(batch.changes)
            # What the tables behind lack lies below the lead. The other partitions' changes
            # read meanwhile are held too, but only the gap says whether it is too far to hold.
            gap = sum(1 for c in kept if c.offset <= lead.get(c.position, -1))
            hold = HOLD_BATCHES * self.settings.lake.batch_max_events
            if gap <= hold and len(kept) <= hold * max(1, len(lead)):
                # Re-reading the log below the leading table's position: wait for all of it.
                self._held = Batch(kept, batch.read_up_to)
                return
            # Too far behind to hold in memory (a new view filling from the whole log): its
            # commits fall between the others' positions, which its data-start ids record.
            log.warning("%d changes behind the leading table: catching up without it", gap)
            self._purge_denied(self._apply_consents(batch))
        else:
            # Consents first, so no table commits a denied patient's change; the purge once
            # bronze has caught up (it finds what the de-identified tables hold).
            denied = self._apply_consents(batch)
            self._run_commits(self._catch_up_jobs(batch, lead))
            self._purge_denied(denied)
        # Held changes make a batch larger than the reader's: commit it batch by batch, so a
        # kill between two tables' commits leaves one at most a batch behind, which the
        # restart holds to catch up exactly (larger gaps are left for a new table).
        for part in split(batch, self.settings.lake.batch_max_events):
            self._run_commits(self._batch_jobs(part))

    def _lead(self) -> Positions:
        """The furthest position any table holds, partition by partition."""
        lead: Positions = {}
        for target in self.targets:
            for tp, off in target.positions.items():
                lead[tp] = max(off, lead.get(tp, -1))
        return lead

    def _lagging(self, lead: Positions) -> Positions:
        """The partitions of `lead` that some table has not reached."""
        return {
            tp: off
            for tp, off in lead.items()
            if any(t.positions.get(tp, -1) < off for t in self.targets)
        }

    def _needed(self, changes: list[Change]) -> list[Change]:
        """The changes some table still has to write (those every table holds are dropped)."""
        return [
            c
            for c in changes
            if any(
                c.offset > t.positions.get(c.position, -1)
                for t in self.targets
                if t.resource is None or t.resource == c.resource_type
            )
        ]

    def _catch_up_jobs(
        self, batch: Batch, lead: Positions
    ) -> list[tuple[Target, list[Change], Positions]]:
        """Commits that bring the tables with changes up to `lead` exactly to it."""
        below = [c for c in batch.changes if c.offset <= lead.get(c.position, -1)]
        if not below:
            return []  # the usual case: nothing was read again
        of_type = by_resource_type(below)
        jobs = []
        for target in self.targets:
            mine = below if target.resource is None else of_type.get(target.resource, [])
            todo = unseen(mine, target.positions)
            if todo:  # a table with nothing in between holds `lead` as it is
                jobs.append((target, todo, {**target.positions, **lead}))
        return jobs

    def _batch_jobs(self, batch: Batch) -> list[tuple[Target, list[Change], Positions]]:
        """A commit per table that the batch takes further (or whose position is stale)."""
        now = time.monotonic()
        of_type = by_resource_type(batch.changes)
        jobs = []
        for target in self.targets:
            behind = {
                tp: off
                for tp, off in batch.read_up_to.items()
                if off > target.positions.get(tp, -1)
            }
            if not behind:
                continue  # the table holds all of it already (a replay after a crash)
            mine = batch.changes if target.resource is None else of_type.get(target.resource, [])
            todo = unseen(mine, target.positions)
            if not todo and now - target.last_commit < HEARTBEAT_SECONDS:
                continue  # nothing for this table: record the position later, not every batch
            jobs.append((target, todo, {**target.positions, **behind}))
        return jobs

    def _run_commits(self, jobs: list[tuple[Target, list[Change], Positions]]) -> None:
        now = time.monotonic()
        # Largest first: the batch waits for its last commit, so the long ones should not
        # start last (bronze and silver/observation take most of a batch's changes).
        jobs = sorted(jobs, key=lambda job: -len(job[1]))
        running = [
            (target, self._committer.submit(self._timed_commit, target, todo, positions))
            for target, todo, positions in jobs
        ]
        wait([job for _, job in running])
        for target, job in running:
            rows, seconds = job.result()
            self.stats.rows[target.name] = self.stats.rows.get(target.name, 0) + rows
            self.stats.seconds[target.name] = self.stats.seconds.get(target.name, 0.0) + seconds
            target.last_commit = now

    def _timed_commit(
        self, target: Target, changes: list[Change], positions: Positions
    ) -> tuple[int, float]:
        started = time.perf_counter()
        rows = self._commit(target, changes, positions)
        return rows, time.perf_counter() - started

    def flush_positions(self, read_up_to: Positions) -> None:
        """Record `read_up_to` in every table that lags it (on shutdown).

        Not while changes are held for a table catching up: the next start reads them again.
        """
        if self._held is not None:
            return
        for target in self.targets:
            behind = {
                tp: off for tp, off in read_up_to.items() if off > target.positions.get(tp, -1)
            }
            if behind:
                self._commit(target, [], {**target.positions, **behind})

    def _commit(self, target: Target, changes: list[Change], positions: Positions) -> int:
        changes = not_shredded(changes)
        started = time.time()
        rows = self._append(target, changes, positions)
        self._purge_shredded(target, changes, started)
        target.positions = positions
        target.commits += 1
        every = self.settings.lake.compact_every_commits
        if every and target.commits % every == 0:
            self._compact(target)
        return rows

    def _append(self, target: Target, changes: list[Change], positions: Positions) -> int:
        for attempt in range(COMMIT_RETRIES):
            try:
                rows = target.write(target.table, changes, positions)
                target.table.update_incremental()
                return rows
            except (CommitFailedError, DeltaError) as exc:
                # Another writer committed first (e.g. `carelog lake optimize`), or removed a
                # file this table's snapshot still named (`carelog erase`): re-read, retry.
                if not isinstance(exc, CommitFailedError) and not _file_gone(exc):
                    raise
                log.warning("%s: commit conflict (%s), retrying", target.name, exc)
                target.table.update_incremental()
                held = table_positions(target.table, self.topic, [p for _, p in positions])
                changes = unseen(changes, held)
                time.sleep(0.1 * (attempt + 1))
        raise CommitFailedError(f"{target.name}: {COMMIT_RETRIES} commit conflicts in a row")

    def _purge_shredded(self, target: Target, written: list[Change], started: float) -> None:
        """Delete what this commit wrote of patients erased while it was being written:
        `carelog erase` may have purged the table meanwhile, and these rows came after (in
        the commit, or in the files of an attempt that failed on the erasure's delete)."""
        late = shredded_resources(written)
        if late:
            deleted, files = purge_resources([target], late, self.deidentifier, started)
            log.warning("%s: %d resources erased while written: rows %s, %d files removed",
                        target.name, len(late), deleted, files)  # fmt: skip

    def _compact(self, target: Target) -> None:
        """Rewrite the table's recent small files into a few: a micro-batch adds a file or
        more per commit, and each commit costs in proportion to the table's files. A commit
        that changes no data and keeps the positions (as `carelog lake optimize`)."""
        try:
            done = target.table.optimize.compact(
                target_size=self.settings.lake.compact_target_bytes
            )
            target.table.update_incremental()
        except CommitFailedError as exc:  # another writer (e.g. `carelog lake optimize`)
            log.warning("%s: compaction skipped (%s)", target.name, exc)
            return
        self.stats.compactions[target.name] = self.stats.compactions.get(target.name, 0) + 1
        log.debug("%s: compacted %s", target.name, done)

    # -- the consumer loop ------------------------------------------------------------------

    def run(
        self,
        idle_timeout: float | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[Batch, float], None] | None = None,
        caught_up: bool = False,
    ) -> Stats:
        """Consume and write until `stop` is set, SIGTERM/SIGINT, or `idle_timeout` seconds idle;
        with `caught_up`, until every partition is written up to the end it had when this
        started (the sink as a batch job)."""
        stop = stop or threading.Event()
        # The ends are asked before joining: once fetching, a caught-up reader would stop at
        # whatever it had fetched.
        ends = self._log_ends() if caught_up else {}
        # A batch allocates millions of small, short-lived objects (decoded events, parsed
        # JSON, rows); at the default thresholds the collector keeps rescanning the whole heap
        # and halves throughput. Nothing here makes reference cycles worth chasing that often.
        gc.freeze()
        gc.set_threshold(200_000, 50, 1_000)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        # A short session: a sink restarted after a crash waits this long for the dead
        # member's partitions (heartbeats come from librdkafka's thread, not from this loop).
        config = consumer_config(
            self.settings,
            self.settings.lake.group_id,
            **{
                "enable.partition.eof": False,
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 2_000,
                # Fewer, fuller fetches (the broker's CPU goes by requests): the lake's
                # freshness is counted in seconds.
                "fetch.min.bytes": 1_048_576,
                "fetch.wait.max.ms": 200,
            },
        )
        if self.settings.lake.instance_id:
            config["group.instance.id"] = self.settings.lake.instance_id
        reader = BatchReader(
            Consumer(config),
            BatchLimits(
                self.settings.lake.batch_max_events,
                self.settings.lake.batch_max_seconds,
                linger_seconds=self.settings.lake.batch_linger_ms / 1000,
            ),
        )

        # Batch n's commits run while batch n+1 is read and decoded: the Delta writes wait
        # on storage and Rust outside the GIL, decoding is Python. One batch in flight at a
        # time keeps each table's commits in log order.
        writer = ThreadPoolExecutor(1, thread_name_prefix="lake-batch")
        in_flight: tuple[Future[None], list[Message]] | None = None

        def finish_in_flight(mark: bool = True) -> None:
            nonlocal in_flight
            if in_flight is not None:
                (done, messages), in_flight = in_flight, None
                done.result()  # raises the batch's failure here, before anything more is read
                if mark:
                    # Kafka's committed offsets are a hint for tools; the tables are the
                    # truth. Only this thread touches the consumer (a rebalance callback runs
                    # inside its reads, and a store from another thread then would wait).
                    reader.mark_handled(messages)

        def start_at(partitions: list[TopicPartition]) -> None:
            # Positions are read from the tables: let the last commit land first.
            finish_in_flight(mark=False)
            resume = self.load_positions([tp.partition for tp in partitions])
            for tp in partitions:
                start = resume[tp.partition]
                tp.offset = OFFSET_BEGINNING if start is None else start
                starts[tp.partition] = start or 0
            log.info("assigned %s", {tp.partition: tp.offset for tp in partitions})
            self.stats.assigned_at = self.stats.assigned_at or time.monotonic()

        starts: dict[int, int] = {}  # partition -> where this member resumed it

        def reached() -> bool:
            """Every partition is this member's and read to its end (`caught_up`)."""
            if not ends:
                return False
            assigned = {tp.partition for tp in reader.consumer.assignment()}
            if assigned != set(ends):
                return False
            pending = [TopicPartition(self.topic, p) for p, end in ends.items() if starts[p] < end]
            # The position, not the last record: it moves past transaction markers too.
            return all(tp.offset >= ends[tp.partition] for tp in reader.consumer.position(pending))

        def write(batch: Batch) -> None:
            self.write_batch(batch)
            self.stats.last_batch_at = time.monotonic()
            if on_batch is not None:
                on_batch(batch, time.time())

        reader.subscribe([self.topic], start_at)
        read_total: Positions = {}
        try:
            batches = reader.batches(stop=stop, idle_timeout=idle_timeout, done=reached)
            for messages in batches:
                batch = until_reachable("lake batch", partial(decode_batch, messages), stop)
                finish_in_flight()
                in_flight = (writer.submit(write, batch), messages)
                read_total.update(batch.read_up_to)
            finish_in_flight()
            self.flush_positions(read_total)
        finally:
            if in_flight is not None:
                wait([in_flight[0]])  # a failure elsewhere: let the running commits end first
            writer.shutdown()
            reader.close()
        return self.stats

    def _log_ends(self) -> dict[int, int]:
        """{partition: last stable offset} of every partition of the topic, now."""
        admin = admin_client(self.settings)
        marks = watermarks(admin, partitions_of(admin, [self.topic]), timeout=15)
        if not marks:
            raise LakeError(f"topic {self.topic} does not exist: run `carelog topics create`")
        return {p: end for (_, p), (_, end) in marks.items()}


def _file_gone(exc: DeltaError) -> bool:
    """A read of a data file the snapshot names failed: the file is no longer there."""
    text = str(exc)
    return "not found" in text or "No such file" in text


def run_sink(
    settings: Settings | None = None,
    idle_timeout: float | None = None,
    on_batch: Callable[[Batch, float], None] | None = None,
    caught_up: bool = False,
) -> Stats:
    sink = LakeSink(settings)
    started = datetime.now(UTC)
    log.info("lake %s: %d tables; reading %s", sink.lake.uri, len(sink.targets), sink.topic)
    stats = sink.run(idle_timeout=idle_timeout, on_batch=on_batch, caught_up=caught_up)
    log.info(
        "stopped after %s: %d batches, %d changes, rows %s",
        datetime.now(UTC) - started,
        stats.batches,
        stats.changes,
        stats.rows,
    )
    return stats


def describe(stats: Stats) -> dict[str, Any]:
    return {
        "batches": stats.batches,
        "changes": stats.changes,
        "skipped": stats.skipped,
        "rows": stats.rows,
    }
