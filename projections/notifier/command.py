"""`carelog notifier`: FHIR Subscriptions served from carelog.fhir.changes.

Three threads: the matcher (this one) reads the log and numbers each subscription's events
in the state file; an asyncio loop delivers them (rest-hook POSTs, websocket clients) and
serves the websocket port; the control port answers the gateway ($status, binding tokens).
One notifier per state directory (it holds the mirror store's writer lock).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from typing import Any

from confluent_kafka import KafkaException

from projections.fhir_store import FhirStore, StoreError
from projections.fhir_store.runner import writer_lock
from projections.notifier import metrics
from projections.notifier.delivery import Delivery
from projections.notifier.matcher import Matcher, run_matcher
from projections.notifier.server import Tokens, control_server, serve_delivery
from projections.notifier.state import State
from streams.process_metrics import group_lag_reader, serve_metrics
from streams.settings import Settings
from streams.topics import FHIR_CHANGES

log = logging.getLogger("carelog.notifier")


def add_commands(sub: Any) -> None:
    """Add `notifier` to the `carelog` subparsers."""
    notifier = sub.add_parser(
        "notifier", help="FHIR Subscriptions: match carelog.fhir.changes, deliver notifications"
    )
    notifier.set_defaults(func=cmd_notifier)


def cmd_notifier(args: argparse.Namespace, settings: Settings) -> int:
    from streams.json_logs import configure

    configure()  # JSON lines, as every carelog process logs
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per notification
    try:
        return run(settings)
    except (StoreError, KafkaException, OSError) as exc:
        print(f"carelog notifier: {exc}", file=sys.stderr)
        return 1


def run(settings: Settings) -> int:
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    folder = settings.notifier_state_dir
    store_path = folder / "store.sqlite"
    with writer_lock(store_path):
        store = FhirStore.open(store_path)
        state = State(folder / "state.sqlite")
        tokens = Tokens(settings.notifier.token_ttl_seconds)
        control = control_server(state, tokens, settings)
        threading.Thread(target=control.serve_forever, name="control", daemon=True).start()
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        holder: dict[str, Any] = {}

        async def deliver() -> None:
            holder["delivery"] = Delivery(state, settings)
            holder["stop"] = asyncio.Event()
            ready.set()
            await serve_delivery(holder["delivery"], tokens, settings, holder["stop"])

        delivering = threading.Thread(target=loop.run_until_complete, args=(deliver(),),
                                      name="delivery", daemon=True)  # fmt: skip
        delivering.start()
        ready.wait(30)
        lag = group_lag_reader(settings, settings.notifier.group_id, [FHIR_CHANGES])
        serve_metrics("notifier", settings, settings.notifier.metrics_port, lag)
        log.info(f"notifier: websocket ws://{settings.notifier.host}:{settings.notifier.port}/ws, "
                 f"control http://{settings.notifier.host}:{settings.notifier.control_port}, "
                 f"state {folder}; reading {settings.kafka.bootstrap}")  # fmt: skip

        def on_batch(changes: int, matched: int) -> None:
            metrics.matched(changes, matched)
            if matched or changes:
                loop.call_soon_threadsafe(holder["delivery"].wake)

        try:
            stats = run_matcher(Matcher(store, state), settings, stop=stop, on_batch=on_batch)
        finally:
            if "stop" in holder:
                loop.call_soon_threadsafe(holder["stop"].set)
            delivering.join(10)
            control.shutdown()
            store.close()
            state.close()
    log.info(f"stopped: {stats.changes} changes matched, {stats.matched} events")
    return 0
