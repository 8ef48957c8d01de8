"""`carelog rejected list|show|redrive` and `carelog lineage`: registered by infra/cli.py."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from streams.settings import Settings


def moment(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", help="gateway, decode, translate or version")
    parser.add_argument("--sender", help="exactly this sender")
    parser.add_argument("--reason", help="a substring of the reason (case-insensitive)")
    parser.add_argument("--since", type=moment, help="rejected at or after (ISO 8601, UTC)")
    parser.add_argument("--until", type=moment, help="rejected before (ISO 8601, UTC)")


def add_commands(sub: Any) -> None:
    """Add `rejected` and `lineage` to the `carelog` subparsers."""
    rejected = sub.add_parser("rejected", help="carelog.rejected: list, show, re-drive")
    actions = rejected.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="the rejections, as a table (or --json)")
    _filters(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    show = actions.add_parser("show", help="one rejection: outcome, original bytes, origin")
    show.add_argument("id", help="the Rejected event id (carelog rejected list)")
    show.add_argument("--json", action="store_true", help="one JSON object")
    redrive = actions.add_parser(
        "redrive", help="send rejected originals through the pipeline again, once each"
    )
    redrive.add_argument("ids", nargs="*", metavar="ID", help="Rejected event ids")
    _filters(redrive)
    redrive.add_argument("--again", action="store_true", help="send even those re-driven before")
    rejected.set_defaults(func=cmd_rejected)

    lineage = sub.add_parser(
        "lineage", help="a resource version back to the inbound bytes it came from"
    )
    lineage.add_argument("reference", help="ResourceType/id or ResourceType/id/_history/n")
    lineage.add_argument("--store", type=Path, help="FHIR store (default CARELOG_FHIR_STORE_PATH)")
    lineage.add_argument("--json", action="store_true")
    lineage.set_defaults(func=cmd_lineage)


def _selection(args: argparse.Namespace, ids: list[str] | None = None) -> Any:
    from infra.history.rejections import Selection

    return Selection(
        frozenset(ids or ()), args.stage, args.sender, args.reason, args.since, args.until
    )


def cmd_rejected(args: argparse.Namespace, settings: Settings) -> int:
    from infra.history.rejections import Selection, details, rejections, summary_row

    if args.action == "list":
        rows = [summary_row(f) for f in rejections(settings, _selection(args))]
        if args.json:
            for row in rows:
                print(orjson.dumps(row).decode())
        else:
            _table(rows)
        return 0
    if args.action == "show":
        found = next(rejections(settings, Selection(frozenset({args.id}))), None)
        if found is None:
            print(f"carelog: no rejection {args.id} on carelog.rejected", file=sys.stderr)
            return 1
        shown = details(found)
        if args.json:
            print(orjson.dumps(shown).decode())
        else:
            _show(shown)
        return 0
    return _redrive(args, settings)


def _redrive(args: argparse.Namespace, settings: Settings) -> int:
    from infra.history.redrive import redrive
    from infra.history.rejections import rejections

    if not args.ids and not any((args.stage, args.sender, args.reason, args.since, args.until)):
        print("carelog: name rejection ids or a filter (--stage, --since, ...)", file=sys.stderr)
        return 2
    selected = list(rejections(settings, _selection(args, args.ids)))
    missing = set(args.ids) - {f.event.event_id for f in selected}
    for rejected_id in sorted(missing):
        print(f"{rejected_id}: not on carelog.rejected")
    outcome = redrive(settings, selected, again=args.again)
    for plan, where in outcome.sent:
        print(f"{','.join(plan.rejected_ids)}: re-sent as {where}")
    for rejected_id, where in outcome.already.items():
        print(f"{rejected_id}: re-driven before, at {where}; not sent again (--again sends)")
    for rejected_id, why in outcome.refused.items():
        print(f"{rejected_id}: not re-driven: {why}")
    return 1 if missing or outcome.refused else 0


def _show(shown: dict[str, Any]) -> None:
    labels = ("id", "rejected_at", "stage", "reason", "sender", "correlation_id", "format",
              "content_type", "original", "original_event_id", "original_key", "on", "held")  # fmt: skip
    for label in labels:
        print(f"{label + ':':<19}{shown[label] if shown[label] is not None else '-'}")
    print("operation outcome:")
    print(orjson.dumps(shown["operation_outcome"], option=orjson.OPT_INDENT_2).decode())
    original = shown["original_bytes"]
    print("original:")
    if isinstance(original, str):  # HL7 v2 segments end in CR: one per line here
        print(original.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n"))
    else:
        print(orjson.dumps(original).decode())


def _table(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'id':<36}  {'rejected at':<19}  {'stage':<9}  {'sender':<16}  {'original':<30}  reason"
    )
    for r in rows:
        at = r["rejected_at"][:19]
        reason = r["reason"] if len(r["reason"]) <= 80 else r["reason"][:77] + "..."
        print(f"{r['id']:<36}  {at:<19}  {r['stage']:<9}  {(r['sender'] or '-')[:16]:<16}  "
              f"{(r['original'] or '-')[:30]:<30}  {reason}")  # fmt: skip
    print(f"{len(rows)} rejection(s)")


def cmd_lineage(args: argparse.Namespace, settings: Settings) -> int:
    from infra.history.lineage import LineageError, lineage

    try:
        found = lineage(settings, args.reference, args.store or settings.fhir_store_file)
    except LineageError as exc:
        print(f"carelog: {exc}", file=sys.stderr)
        return 1
    data = found.to_json()
    if args.json:
        print(orjson.dumps(data).decode())
        return 0
    change, inbound = data["change"], data["inbound"]
    print(f"{data['resource']}  ({change['operation']}, {change['mapping_version']})")
    print(f"  change      {change['at']}  event {change['event_id']}")
    if data["translated"] is not None:
        print(f"  translated  {data['translated']['at']}  event {data['translated']['event_id']}")
    else:
        print("  translated  (not found on carelog.fhir.translated)")
    print(f"  inbound     {inbound['at']}  event {inbound['event_id']}  from {inbound['sender']} "
          f"via {inbound['channel']}, {inbound['content_type']}, received {inbound['received_at']}")  # fmt: skip
    if inbound["redrive_of"]:
        print(f"              re-driven for rejection(s) {inbound['redrive_of']}")
    print(f"  payload     sha256 {inbound['sha256']}"
          + (f", {inbound['payload_ref']}" if inbound["payload_ref"] else ""))  # fmt: skip
    if data["payload_error"]:
        print(f"  payload     unavailable: {data['payload_error']}")
    else:
        payload = data["payload"]
        print(payload if isinstance(payload, str) else orjson.dumps(payload).decode())
    return 0
