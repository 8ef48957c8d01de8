"""`carelog worker`: the processors' Faust worker. Registered by infra/cli.py."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from streams.settings import Settings


def add_commands(sub: Any) -> None:
    """Add `worker` to the `carelog` subparsers."""
    worker = sub.add_parser("worker", help="the processors' Faust worker (several share the work)")
    worker.add_argument(
        "--log-level", default="info", choices=["crit", "error", "warn", "info", "debug"]
    )
    worker.set_defaults(func=cmd_worker)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the processors' Faust worker (replaces this process)."""
    # --quiet: no banner on stdout; the worker's log is JSON lines on stderr, as every process's.
    argv = [sys.executable, "-m", "processors.worker", "--quiet", "worker", "--without-web",
            "--loglevel", args.log_level]  # fmt: skip
    os.execv(sys.executable, argv)
    return 0
