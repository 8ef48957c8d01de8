"""`carelog projection [run|rebuild|verify]`: the FHIR store's command-line actions (the
work; projections/fhir_store/commands.py declares the command)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from projections.fhir_store import metrics
from projections.fhir_store.apply import Applied
from projections.fhir_store.errors import StoreError
from projections.fhir_store.offsets_file import applied_offsets
from projections.fhir_store.rebuild import rebuild, verify
from projections.fhir_store.runner import TOPICS, consume, writer_lock
from projections.fhir_store.store import FhirStore
from streams.admin import admin_client
from streams.json_logs import configure
from streams.lag import PartitionLag, count_pending, lag_of
from streams.process_metrics import serve_metrics
from streams.settings import Settings

log = logging.getLogger("carelog.projection")


def _run(path: Path, settings: Settings, idle: float | None, caught_up: bool) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with writer_lock(path):
        store = FhirStore.open(path)
        offsets = store.applied_offsets()
        log.info("fhir store %s: %d partitions applied so far; reading %s",
                 path, len(offsets), settings.kafka.bootstrap)  # fmt: skip

        serve_metrics("projection", settings, settings.store.metrics_port,
                      store_lag_reader(settings, path))  # fmt: skip

        def on_batch(applied: Applied) -> None:
            metrics.observe(applied)
            log.info("applied %d events (%d versions, %d rejections)",
                     applied.records, applied.versions, applied.rejections)  # fmt: skip

        try:
            stats = consume(store, settings, stop=stop, idle_timeout=idle, caught_up=caught_up,
                            on_batch=on_batch)  # fmt: skip
        finally:
            store.close()
    log.info("stopped: %d events applied (%d versions, %d rejections) in %.1fs",
             stats.records, stats.versions, stats.rejections, stats.seconds)  # fmt: skip
    return 0


def store_lag_reader(settings: Settings, path: Path) -> Callable[[], list[PartitionLag]]:
    """The store's lag: what its file says it applied against the ends of the log."""
    admin = admin_client(settings)
    return lambda: count_pending(
        settings, lag_of(admin, applied_offsets(path), TOPICS, timeout=3.0)
    )


def run_command(args: argparse.Namespace, settings: Settings) -> int:
    configure()
    path: Path = args.store or settings.fhir_store_file
    try:
        if args.action == "run":
            return _run(path, settings, args.idle, args.until_caught_up)
        if args.action == "rebuild":
            stats = rebuild(path, settings)
            print(f"rebuilt {path} from offset 0: {stats.records} events, {stats.versions} "
                  f"versions, {stats.rejections} rejections in {stats.seconds:.1f}s")  # fmt: skip
            return 0
        result = verify(path, settings)
        if result.equal:
            print(f"equal: {result.resources} resources, {result.versions} versions, "
                  f"{result.rejections} rejections; digest {result.live_digest}")  # fmt: skip
            return 0
        print(f"DIFFERENT: live digest {result.live_digest}, rebuilt {result.rebuilt_digest}")
        for line in result.differences:
            print(f"  {line}")
        return 2
    except (StoreError, KafkaException) as exc:
        print(f"carelog projection: {exc}", file=sys.stderr)
        return 1
