"""`carelog replay --from X --into NAME` and `carelog replay diff|promote|drop NAME`:
registered by infra/cli.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from streams.settings import Settings


def add_commands(sub: Any) -> None:
    """Add `replay` to the `carelog` subparsers."""
    replay = sub.add_parser(
        "replay",
        help="inbound history through the current mapping into a shadow; diff, promote, drop",
        description="carelog replay --from WHEN --into NAME | replay diff|promote|drop NAME",
    )
    replay.add_argument(
        "action", nargs="?", default="run", choices=["run", "diff", "promote", "drop"]
    )
    replay.add_argument("name", nargs="?", help="the shadow (diff, promote, drop)")
    replay.add_argument("--into", help="run: the shadow to create")
    replay.add_argument(
        "--from", dest="start", default="beginning",
        help="run: beginning (default), an ISO 8601 time, or FORMAT:PARTITION=OFFSET,...",
    )  # fmt: skip
    replay.add_argument(
        "--store", type=Path, help="live FHIR store (default CARELOG_FHIR_STORE_PATH)"
    )
    replay.add_argument("--json", action="store_true", help="diff: as JSON")
    replay.add_argument(
        "--samples", type=int, default=3, help="diff: sample resources per type and kind"
    )
    replay.add_argument(
        "--include-audit", action="store_true", help="diff: compare AuditEvents too"
    )
    replay.add_argument("--again", action="store_true", help="promote: even if promoted before")
    replay.set_defaults(func=cmd_replay)


def _fail(message: str, code: int = 1) -> int:
    print(f"carelog: {message}", file=sys.stderr)
    return code


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from infra.replay.names import Shadow, ShadowError

    name = args.into if args.action == "run" else args.name
    if not name:
        return _fail("name the shadow: replay --into NAME, or replay diff|promote|drop NAME", 2)
    live_store: Path = args.store or settings.fhir_store_file
    try:
        shadow = Shadow.named(name, settings)
        if args.action == "run":
            return _run(args, settings, shadow, live_store)
        if args.action == "drop":
            from infra.replay.drop import drop

            removed = drop(settings, shadow)
            print("\n".join(removed) if removed else f"shadow {name}: nothing to remove")
            return 0
        if not shadow.manifest.exists():
            return _fail(f"no shadow {name} (carelog replay --into {name})")
        from infra.replay.diff import diff_stores

        skip = frozenset() if args.include_audit else frozenset({"AuditEvent"})
        diff = diff_stores(live_store, shadow.store, samples=args.samples, skip_types=skip)
        if args.action == "diff":
            _print_diff(diff.to_json(), args.json)
            return 0
        return _promote(args, settings, shadow, diff)
    except (ShadowError, ValueError) as exc:
        return _fail(str(exc))


def _run(args: argparse.Namespace, settings: Settings, shadow: Any, live_store: Path) -> int:
    from infra.replay.run import replay
    from infra.replay.start import parse_start

    stats = replay(settings, shadow, parse_start(args.start), live_store)
    print(f"shadow {shadow.name}: {stats.inbound} inbound messages replayed in "
          f"{stats.seconds:.1f}s: {stats.translated} resources translated, {stats.changes} "
          f"changes, {stats.rejections} rejections")  # fmt: skip
    print(f"  topics {shadow.changes}, {shadow.rejected}; store {shadow.store}")
    print(f"  next: carelog replay diff {shadow.name}")
    return 0


def _print_diff(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(data).decode())
        return
    print(f"{'type':<28} {'added':>7} {'changed':>8} {'removed':>8} {'unchanged':>10}")
    for rtype, d in data.items():
        print(
            f"{rtype:<28} {d['added']:>7} {d['changed']:>8} {d['removed']:>8} {d['unchanged']:>10}"
        )
    for d in data.values():
        for sample in d["samples"]:
            print(f"{sample['kind']:>8} {sample['resource']}")
            for f in sample.get("fields", []):
                old, new = (orjson.dumps(v).decode() for v in (f["old"], f["new"]))
                print(f"           {f['path']}: {old} -> {new}")


def _promote(args: argparse.Namespace, settings: Settings, shadow: Any, diff: Any) -> int:
    from infra.replay.promote import promote

    done = promote(settings, shadow, diff, again=args.again)
    if done.already is not None:
        print(f"shadow {shadow.name} was promoted before (first re-sent message at "
              f"{done.already}); nothing sent (--again sends)")  # fmt: skip
    else:
        print(f"re-drove {len(done.sent)} inbound messages through the live pipeline "
              f"(header carelog-replay-of={shadow.name}); the live worker versions what "
              "changed. The shadow store was not swapped in: the log stays the source of truth.")  # fmt: skip
    for key in done.not_deleted:
        print(
            f"  {key}: absent from the shadow, left live (delete it through the FHIR API if meant)"
        )
    return 0
