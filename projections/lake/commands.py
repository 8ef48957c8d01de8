"""The lake's subcommands of `carelog`: `sink`, `lake optimize`, `lake tables`, `lake as-of`.

Registered by infra/cli.py; heavy imports (deltalake, pyarrow) wait until a command runs.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from streams.settings import Settings


def add_commands(sub: Any) -> None:
    """Add `sink` and `lake` to the `carelog` subparsers."""
    sink = sub.add_parser(
        "sink", help="the Delta Lake sink: carelog.fhir.changes -> bronze/silver tables"
    )
    sink.add_argument("--idle", type=float, help="stop after this many seconds without changes")
    sink.add_argument(
        "--until-caught-up",
        action="store_true",
        help="stop once the tables hold the log up to where it ended when the sink started",
    )
    sink.set_defaults(func=cmd_sink)

    lake = sub.add_parser(
        "lake",
        help="the Delta tables: list them, compact and vacuum them, open them as of a position",
    )
    lake.add_argument("action", choices=["tables", "optimize", "as-of"])
    lake.add_argument(
        "--json", action="store_true", help="tables: one JSON object per table; as-of: one object"
    )
    lake.add_argument(
        "--position",
        default="latest",
        help="as-of: partition:offset,... of carelog.fhir.changes (last offset included), "
        "or latest (the default)",
    )
    lake.add_argument(
        "--retention-hours",
        type=int,
        help="optimize: keep files younger than this (default CARELOG_LAKE_VACUUM_RETENTION_HOURS)",
    )
    lake.set_defaults(func=cmd_lake)


def cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
    from projections.lake import metrics
    from projections.lake.sink import describe, run_sink
    from streams.json_logs import configure
    from streams.process_metrics import group_lag_reader, serve_metrics
    from streams.topics import FHIR_CHANGES

    os.nice(settings.lake.nice)  # before any thread starts: each thread keeps its own
    configure()  # before serve_metrics adds its error counter to the root logger
    lag = group_lag_reader(settings, settings.lake.group_id, [FHIR_CHANGES])
    serve_metrics("sink", settings, settings.lake.metrics_port, lag)
    stats = run_sink(
        settings, idle_timeout=args.idle, on_batch=metrics.observe, caught_up=args.until_caught_up
    )
    print(json.dumps(describe(stats)))
    return 0


def _table_names(settings: Settings) -> list[str]:
    from projections.lake.tables import BRONZE, Lake
    from projections.lake.views import SHIPPED_VIEWS, load_views

    names = [BRONZE] + [
        f"silver/{v.name}" for v in load_views(SHIPPED_VIEWS, settings.lake.views_dir)
    ]
    if settings.lake.deidentify_secret is not None:
        names += [f"deidentified/{n}" for n in names if n.startswith("silver/")]
    found = Lake.from_settings(settings).table_names()
    return names + [n for n in found if n not in names]


def cmd_lake(args: argparse.Namespace, settings: Settings) -> int:
    from projections.lake.maintenance import describe, optimize
    from projections.lake.tables import Lake
    from streams.topics import FHIR_CHANGES

    lake = Lake.from_settings(settings)
    names = _table_names(settings)
    if args.action == "as-of":
        return _as_of(args, lake, [n for n in names if lake.open(n) is not None])
    if args.action == "optimize":
        hours = (
            args.retention_hours
            if args.retention_hours is not None
            else settings.lake.vacuum_retention_hours
        )
        for name, done in optimize(lake, names, hours).items():
            print(f"{name}: {json.dumps(done)}")
        return 0
    for info in describe(lake, names, FHIR_CHANGES):
        if args.json:
            print(json.dumps(info.__dict__))
            continue
        offsets = ", ".join(f"{p}:{o}" for p, o in sorted(info.positions.items())) or "none"
        partitioned = f" partitioned by {', '.join(info.partition_by)}" if info.partition_by else ""
        print(
            f"{lake.uri_of(info.name)}  version {info.version}, {info.rows} rows, "
            f"{info.files} files{partitioned}"
        )
        print(f"  offsets of {FHIR_CHANGES} (partition:last offset): {offsets}")
        print("  columns: " + ", ".join(f"{n} {t}" for n, t in info.columns))
    return 0


def _as_of(args: argparse.Namespace, lake: Any, names: list[str]) -> int:
    """Print each table's version at the position; status 1 unless they hold it exactly."""
    from projections.lake.as_of import AsOfError, format_position, parse_position, resolve

    try:
        found = resolve(parse_position(args.position), lake, names)
    except AsOfError as exc:
        print(f"carelog lake as-of: {exc}")
        return 2
    exact = found.complete and all(t.exact for t in found.tables)
    if args.json:
        print(
            json.dumps(
                {
                    "requested": found.requested,
                    "position": found.position,
                    "complete": found.complete,
                    "exact": exact,
                    "versions": found.versions,
                    "inexact": [t.name for t in found.tables if not t.exact],
                }
            )
        )
        return 0 if exact else 1
    asked = "latest" if found.requested is None else format_position(found.requested)
    print(f"as of carelog.fhir.changes {format_position(found.position)} (asked: {asked})")
    if not found.complete:
        print("  no batch ended at the position asked: these versions hold the changes up to")
        print("  the last batch end before it, shown above")
    width = max((len(t.name) for t in found.tables), default=0)
    for t in found.tables:
        note = "" if t.exact else "  (not exact: filled from the log past this position at once)"
        print(f"{lake.uri_of(t.name):<{width + len(lake.uri) + 3}} version {t.version}{note}")
    return 0 if exact else 1
