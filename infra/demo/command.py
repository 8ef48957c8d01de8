"""`carelog demo`: its arguments. The work is in infra/demo/run.py, imported only when the
demo runs (pydicom, httpx and rich need not load for every `carelog` command)."""

from __future__ import annotations

import argparse
from typing import Any

from streams.settings import Settings

SCOPES = "system/*.write system/*.read system/hl7v2.write system/device.write system/dicom.write"


def add_commands(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="send a synthetic hospital stream through a running carelog, then show it"
    )
    demo.add_argument("--patients", type=int, default=50, help="how many patients (default 50)")
    demo.add_argument("--seed", type=int, default=7, help="same seed, same messages (default 7)")
    demo.add_argument("--gateway", help="gateway URL (default CARELOG_GATEWAY_HOST/PORT)")
    demo.add_argument("--mllp", default="127.0.0.1:2575", help="MLLP listener HOST:PORT")
    demo.add_argument(
        "--token",
        help="bearer token with the scopes "
        f"{SCOPES!r} (default: minted with the development secret)",
    )
    demo.add_argument(
        "--wait",
        type=float,
        default=90.0,
        help="seconds to wait for the pipeline to show the data (default 90)",
    )
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from infra.demo.run import run_demo

    return run_demo(args, settings)
