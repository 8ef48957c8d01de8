"""`carelog projection`: its arguments. The work is in projections/fhir_store/command.py,
imported only when the command runs. Registered by infra/cli.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from streams.settings import Settings


def add_commands(sub: Any) -> None:
    """Add `projection` to the `carelog` subparsers."""
    projection = sub.add_parser(
        "projection", help="the FHIR store: fold carelog.fhir.changes and carelog.audit into SQLite"
    )
    projection.add_argument(
        "action", nargs="?", default="run", choices=["run", "rebuild", "verify"]
    )
    projection.add_argument(
        "--store", type=Path, help="store file (default CARELOG_FHIR_STORE_PATH)"
    )
    projection.add_argument("--idle", type=float, help="run: stop after this many idle seconds")
    projection.add_argument(
        "--until-caught-up",
        action="store_true",
        help="run: stop once the store holds the log up to where it ended when the run started",
    )
    projection.set_defaults(func=cmd_projection)


def cmd_projection(args: argparse.Namespace, settings: Settings) -> int:
    from projections.fhir_store.command import run_command

    return run_command(args, settings)
