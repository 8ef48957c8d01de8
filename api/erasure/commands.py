"""`carelog erase`: the right to erasure, from the command line. Registered by infra/cli.py."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
from typing import Any

from streams.settings import Settings

_PATIENT = re.compile(r"^Patient/(?P<id>[A-Za-z0-9\-.]{1,64})$")


def add_commands(sub: Any) -> None:
    erase = sub.add_parser(
        "erase",
        help="erase a patient: shred their data keys, purge the FHIR store and the lake",
    )
    erase.add_argument("patient", help="Patient/<id>")
    erase.add_argument("--reason", required=True, help="why (kept in the AuditEvent)")
    erase.add_argument(
        "--requested-by", default=getpass.getuser(), help="who asked (default: this user)"
    )
    erase.set_defaults(func=cmd_erase)


def _progress(step: str) -> None:
    print(f"carelog erase: {step}", file=sys.stderr, flush=True)


def cmd_erase(args: argparse.Namespace, settings: Settings) -> int:
    from api.erasure.erase import ErasureError, erase_patient

    match = _PATIENT.match(args.patient)
    if match is None:
        print(f"carelog erase: expected Patient/<id>, got {args.patient!r}")
        return 2
    try:
        report = erase_patient(
            settings, match["id"], args.reason, args.requested_by,
            progress=_progress,
        )  # fmt: skip
    except ErasureError as exc:
        print(f"carelog erase: {exc}")
        return 1
    print(json.dumps(report.as_json(), indent=2))
    return 0
