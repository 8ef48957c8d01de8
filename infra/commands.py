"""`carelog run|status`: everything on this machine, and how it is doing.

Registered by infra/cli.py.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import sys
from typing import Any

from infra.kafka_broker import LocalBroker
from infra.local_workers import local_workers
from streams.admin import apply_catalogue
from streams.producer import EventProducer
from streams.schema_topic import publish_schemas
from streams.settings import Settings
from streams.topics import SCHEMAS


def add_commands(sub: Any) -> None:
    """Add `run` and `status` to the `carelog` subparsers."""
    run = sub.add_parser("run", help="start everything on this machine")
    run.add_argument("--infra-only", action="store_true",
                     help="only the broker, the topics and the schema catalogue, then return")  # fmt: skip
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="lag per reader and topic, processes' last errors")
    status.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for the broker (default 5)")  # fmt: skip
    status.set_defaults(func=cmd_status)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from infra.supervisor import Service, Supervisor, carelog_command

    supervisor = Supervisor([], settings.var_dir / "logs")
    if settings.kafka.uses_local_broker:
        broker = LocalBroker(settings)
        if broker.pid() is not None and broker.answers():
            print(f"kafka: {broker.bootstrap} already running (pid {broker.pid()}); left running")
        elif args.infra_only:
            status = broker.up()
            print(f"kafka: {status.bootstrap} (pid {status.pid}), log {status.log_file}")
        else:  # supervised with the rest: restarted if it dies, stopped on Ctrl-C (last)
            kafka = Service("kafka", carelog_command("kafka", "run"), broker.bootstrap, tier=0)
            print(f"kafka: starting on {broker.bootstrap}, log {supervisor.log_file(kafka)}")
            supervisor.start_first(kafka, broker.answers, timeout=120)
    else:
        print(f"kafka: {settings.kafka.bootstrap} (CARELOG_KAFKA_BOOTSTRAP)")
    for name, action in apply_catalogue(settings=settings).items():
        print(f"topic {name}: {action}")
    with EventProducer(settings) as producer:
        print(f"schemas: {publish_schemas(producer)} published to {SCHEMAS}")
    if args.infra_only:
        return 0
    from api.mllp.tls import plain_tcp_warning

    if (warning := plain_tcp_warning(settings)) is not None:
        print(warning, file=sys.stderr, flush=True)
    static_members(settings)
    host = settings.gateway.host
    mllp = f"mllp://{settings.mllp.host}:{settings.mllp.port}"
    if settings.mllp.tls_cert is not None:
        mllp += " (TLS)"
    supervisor.services += [
        Service("gateway", carelog_command("gateway"), f"http://{host}:{settings.gateway.port}"),
        Service("mllp", carelog_command("mllp"), mllp),
        *(
            Service(worker.name, carelog_command("worker"), env=worker.env)
            for worker in local_workers(
                settings.worker.processes,
                settings.worker.metrics_port,
                os.environ.get("CARELOG_WORKER_INSTANCE_ID"),  # static_members set it
            )
        ),
        Service(
            "projection", carelog_command("projection"), f"FHIR store {settings.fhir_store_file}"
        ),
        Service(
            "sink",
            carelog_command("sink"),
            f"Delta tables {settings.lake.uri or settings.var_dir / 'lake'}",
        ),
        Service(
            "notifier",
            carelog_command("notifier"),
            f"Subscriptions ws://{settings.notifier.host}:{settings.notifier.port}/ws",
        ),
    ]
    print("carelog is starting; Ctrl-C stops everything. A token for the gateway: "
          "carelog token --scope 'system/*.write system/hl7v2.write system/device.write'")  # fmt: skip
    if sys.stdout.isatty():
        from infra.run_view import run_live

        run_live(supervisor, settings)
    else:  # piped or logged: plain lines
        supervisor.run_forever()
    return 0


def static_members(settings: Settings) -> None:
    """Give the worker and the sink it starts static member ids (unless set): one of each runs
    per var dir, so a restart after a crash takes the partitions back at once instead of
    waiting for the dead member's session (60 s for the worker) to end."""
    here = hashlib.sha256(str(settings.var_dir.resolve()).encode()).hexdigest()[:8]
    for variable, name in (("CARELOG_WORKER_INSTANCE_ID", "worker"),
                           ("CARELOG_LAKE_INSTANCE_ID", "sink")):  # fmt: skip
        os.environ.setdefault(variable, f"{socket.gethostname()}-{here}-{name}")


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from infra.status import print_status

    return print_status(settings, timeout=args.timeout)
