"""The `carelog` command."""

from __future__ import annotations

import argparse
import sys

from api.commands import add_commands as add_api_commands
from api.erasure.commands import add_commands as add_erasure_commands
from infra.commands import add_commands as add_infra_commands
from infra.demo.command import add_commands as add_demo_commands
from infra.history.commands import add_commands as add_history_commands
from infra.kafka_broker import BrokerError
from infra.native_build import stale, stale_message
from infra.replay.commands import add_commands as add_replay_commands
from processors.commands import add_commands as add_processors_commands
from projections.fhir_store.commands import add_commands as add_fhir_store_commands
from projections.lake.commands import add_commands as add_lake_commands
from projections.notifier.command import add_commands as add_notifier_commands
from schemas.errors import CodecError
from streams.commands import add_commands as add_streams_commands
from streams.commands import fail
from streams.errors import LogError
from streams.settings import get_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carelog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    # Each package adds its own commands, in the order `carelog --help` lists them.
    add_streams_commands(sub)  # kafka, topics, publish, tail
    add_api_commands(sub)  # mllp, gateway, token
    add_processors_commands(sub)  # worker
    add_lake_commands(sub)  # sink, lake tables|optimize
    add_notifier_commands(sub)  # notifier: FHIR Subscriptions
    add_demo_commands(sub)  # demo: a synthetic stream through a running carelog
    add_history_commands(sub)  # rejected list|show|redrive, lineage
    add_replay_commands(sub)  # replay --into, replay diff|promote|drop
    add_fhir_store_commands(sub)  # projection
    add_erasure_commands(sub)  # erase Patient/<id>: crypto-shredding
    add_infra_commands(sub)  # run, status
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if found := stale():
        return fail(stale_message(found))
    try:
        return int(args.func(args, get_settings()))
    except (BrokerError, LogError, CodecError, OSError) as exc:
        return fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
