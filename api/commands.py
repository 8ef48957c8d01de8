"""`carelog gateway|mllp|token`: the HTTP gateway, the MLLP listener, a development token.

Registered by infra/cli.py; the servers' imports wait until a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streams.settings import Settings


def add_commands(sub: Any) -> None:
    """Add `mllp`, `gateway` and `token` to the `carelog` subparsers."""
    mllp = sub.add_parser(
        "mllp", help="the MLLP listener: HL7 v2 over TCP/TLS, ACK once on the log"
    )
    mllp.add_argument("--host", help="address to listen on (default CARELOG_MLLP_HOST, 127.0.0.1)")
    mllp.add_argument("--port", type=int, help="port (default CARELOG_MLLP_PORT, 2575)")
    mllp.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    mllp.add_argument("--log-level", default="INFO")
    mllp.set_defaults(func=cmd_mllp)

    gateway = sub.add_parser("gateway", help="serve the HTTP gateway (HL7 v2, FHIR, devices)")
    gateway.add_argument(
        "--host", help="address to listen on (default CARELOG_GATEWAY_HOST, 127.0.0.1)"
    )
    gateway.add_argument("--port", type=int, help="port (default CARELOG_GATEWAY_PORT, 8080)")
    gateway.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (default CARELOG_GATEWAY_WORKERS, 0: one per core, "
        "at most 4)",
    )
    gateway.set_defaults(func=cmd_gateway)

    token = sub.add_parser("token", help="print a development HS256 bearer token")
    token.add_argument("--scope", required=True, help='e.g. "system/*.write system/hl7v2.write"')
    token.add_argument("--sub", default="carelog-dev", help="subject (default carelog-dev)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(func=cmd_token)


def cmd_mllp(args: argparse.Namespace, settings: Settings) -> int:
    from api.json_logs import configure
    from api.mllp.service import run

    configure(args.log_level)
    host = args.host or settings.mllp.host
    port = args.port if args.port is not None else settings.mllp.port
    run(settings, host, port, args.metrics_port or settings.mllp.metrics_port)
    return 0


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from api.server import serve

    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from api.security.dev_token import dev_secret_file, mint_token, signing_secret

    if settings.auth.hs256_secret is None:
        print(
            f"signing with the development secret in {dev_secret_file(settings)}", file=sys.stderr
        )
        if settings.auth.jwks_url or settings.auth.public_key:
            print(
                "warning: the gateway verifies with CARELOG_AUTH_JWKS_URL/PUBLIC_KEY and will "
                "not accept this token; set CARELOG_AUTH_HS256_SECRET on both sides",
                file=sys.stderr,
            )
    token = mint_token(
        signing_secret(settings),
        args.scope,
        args.sub,
        args.ttl,
        audience=settings.auth.audience,
        issuer=settings.auth.issuer,
    )
    print(token)  # last line: scripts take it with `| tail -1`
    return 0
