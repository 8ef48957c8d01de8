"""The `carelog` command."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from infra.kafka_broker import BrokerError, LocalBroker
from infra.render import event_json, safe_value
from schemas.errors import CodecError
from schemas.events import Channel, Format, InboundMessage, decode_event, encode_event
from streams.admin import admin_client, apply_catalogue, existing_topics
from streams.errors import LogError
from streams.kafka_config import client_config
from streams.keys import inbound_key
from streams.producer import EventProducer, Outgoing
from streams.schema_topic import publish_schemas
from streams.settings import Settings, get_settings
from streams.topics import SCHEMAS, catalogue, inbound_topic

CONTENT_TYPES = {
    Format.hl7v2: "x-application/hl7-v2+er7",
    Format.fhir: "application/fhir+json",
    Format.dicom: "application/dicom",
    Format.device: "application/json",
}


def _fail(message: str) -> int:
    print(f"carelog: {message}", file=sys.stderr)
    return 1


def cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.uses_local_broker:
        print(
            f"CARELOG_KAFKA_BOOTSTRAP={settings.kafka_bootstrap}: using that cluster, starting nothing"
        )
        return 0
    broker = LocalBroker(settings)
    if args.action == "up":
        started = time.monotonic()
        status = broker.up()
        print(
            f"kafka {status.bootstrap} up (pid {status.pid}) in {time.monotonic() - started:.1f}s; log {status.log_file}"
        )
    elif args.action == "run":  # in the foreground, for a supervisor (carelog run, a container)
        broker.run_foreground()
    elif args.action == "down":
        print("kafka stopped" if broker.down() else "kafka was not running")
    else:
        status = broker.status()
        state = "running" if status.running else "stopped"
        print(
            f"kafka {state} on {status.bootstrap} pid={status.pid} data={status.data_dir} log={status.log_file}"
        )
        return 0 if status.running else 3
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "manifests":
        from infra.k8s_topics import topic_manifests

        print(topic_manifests(args.environment, args.cluster), end="")
        return 0
    if args.action == "create":
        for name, action in apply_catalogue(settings=settings).items():
            print(f"{name}: {action}")
        return 0
    present = existing_topics(admin_client(settings))
    print(f"{'topic':<28} {'partitions':>10} {'replicas':>8}  key / configs")
    for topic in catalogue(settings.environment):
        state = present.get(topic.name)
        if state is None:
            print(f"{topic.name:<28} {'missing':>10} {'':>8}  run: carelog topics create")
            continue
        configs = ", ".join(f"{k}={v}" for k, v in sorted(state.configs.items()))
        print(
            f"{topic.name:<28} {state.partitions:>10} {state.replication:>8}  key: {topic.key}; {configs}"
        )
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    fmt = Format(args.format)
    sender = args.sender or f"file:{getpass.getuser()}"
    events = []
    for path in args.files:
        payload = Path(path).read_bytes()
        event = InboundMessage.received(
            payload,
            channel=Channel.file,
            format=fmt,
            content_type=CONTENT_TYPES[fmt],
            sender=sender,
            headers={"file.name": Path(path).name},
        )
        key = inbound_key(fmt, payload, sender)
        events.append((event, Outgoing(inbound_topic(fmt), key, encode_event(event))))
    with EventProducer(settings) as producer:
        delivered = producer.send_many(out for _, out in events)
    for (event, _), where in zip(events, delivered, strict=True):
        print(f"{event.event_id} {where.topic}[{where.partition}]@{where.offset}")
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    consumer = Consumer(
        client_config(
            settings,
            **{"group.id": f"carelog-tail-{uuid.uuid4()}", "enable.auto.commit": False},
        )
    )
    meta = consumer.list_topics(args.topic, timeout=10)
    topic_meta = meta.topics.get(args.topic)
    if topic_meta is None or topic_meta.error is not None:
        return _fail(f"topic {args.topic} does not exist (carelog topics list)")
    start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
    consumer.assign([TopicPartition(args.topic, p, start) for p in topic_meta.partitions])
    shown = 0
    idle_since = time.monotonic()
    try:
        while args.max is None or shown < args.max:
            msg = consumer.poll(0.5)
            if msg is None or msg.error() is not None:
                if args.idle is not None and time.monotonic() - idle_since > args.idle:
                    break
                continue
            idle_since = time.monotonic()
            position = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                        "key": safe_value(msg.key())}  # fmt: skip
            value = msg.value() or b""
            if args.topic == SCHEMAS:
                print(orjson.dumps({**position, "schema": orjson.loads(value)}).decode())
            else:
                try:
                    print(event_json(decode_event(value), **position), flush=True)
                except CodecError as exc:
                    print(
                        orjson.dumps(
                            {**position, "error": str(exc), "value": safe_value(value)}
                        ).decode()
                    )
            shown += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from infra.supervisor import Service, Supervisor, carelog_command

    supervisor = Supervisor([], settings.var_dir / "logs")
    if settings.uses_local_broker:
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
        print(f"kafka: {settings.bootstrap} (CARELOG_KAFKA_BOOTSTRAP)")
    for name, action in apply_catalogue(settings=settings).items():
        print(f"topic {name}: {action}")
    with EventProducer(settings) as producer:
        print(f"schemas: {publish_schemas(producer)} published to {SCHEMAS}")
    if args.infra_only:
        return 0
    from api.mllp_tls import plain_tcp_warning

    if (warning := plain_tcp_warning(settings)) is not None:
        print(warning, file=sys.stderr, flush=True)
    host = settings.gateway_host
    mllp = f"mllp://{settings.mllp_host}:{settings.mllp_port}"
    if settings.mllp_tls_cert is not None:
        mllp += " (TLS)"
    supervisor.services += [
        Service("gateway", carelog_command("gateway"), f"http://{host}:{settings.gateway_port}"),
        Service("mllp", carelog_command("mllp"), mllp),
        Service("worker", carelog_command("worker")),
        Service(
            "projection", carelog_command("projection"), f"FHIR store {settings.fhir_store_file}"
        ),
        Service(
            "sink",
            carelog_command("sink"),
            f"Delta tables {settings.lake_uri or settings.var_dir / 'lake'}",
        ),
        Service(
            "notifier",
            carelog_command("notifier"),
            f"Subscriptions ws://{settings.notifier_host}:{settings.notifier_port}/ws",
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


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from infra.status import print_status

    return print_status(settings, timeout=args.timeout)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run the processors' Faust worker (replaces this process)."""
    argv = [sys.executable, "-m", "processors.worker", "worker", "--without-web",
            "--loglevel", args.log_level]  # fmt: skip
    os.execv(sys.executable, argv)
    return 0


def cmd_mllp(args: argparse.Namespace, settings: Settings) -> int:
    from api.json_logs import configure
    from api.mllp_service import run

    configure(args.log_level)
    host = args.host or settings.mllp_host
    port = args.port if args.port is not None else settings.mllp_port
    run(settings, host, port, args.metrics_port or settings.mllp_metrics_port)
    return 0


def cmd_gateway(args: argparse.Namespace, settings: Settings) -> int:
    from api.server import serve

    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_token(args: argparse.Namespace, settings: Settings) -> int:
    from api.dev_token import dev_secret_file, mint_token, signing_secret

    if settings.auth_hs256_secret is None:
        print(
            f"signing with the development secret in {dev_secret_file(settings)}", file=sys.stderr
        )
        if settings.auth_jwks_url or settings.auth_public_key:
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
        audience=settings.auth_audience,
        issuer=settings.auth_issuer,
    )
    print(token)  # last line: scripts take it with `| tail -1`
    return 0


def cmd_projection(args: argparse.Namespace, settings: Settings) -> int:
    from projections.fhir_store.command import run_command

    return run_command(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carelog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="the local Kafka broker (KRaft, single node)")
    kafka.add_argument("action", choices=["up", "down", "status", "run"])
    kafka.set_defaults(func=cmd_kafka)

    topics = sub.add_parser("topics", help="the topic catalogue")
    topics.add_argument("action", choices=["create", "list", "manifests"])
    topics.add_argument("--environment", default="production",
                        help="manifests: catalogue of this environment (default production)")  # fmt: skip
    topics.add_argument("--cluster", default="carelog",
                        help="manifests: the Strimzi Kafka resource they belong to")  # fmt: skip
    topics.set_defaults(func=cmd_topics)

    publish = sub.add_parser("publish", help="append files as InboundMessage events")
    publish.add_argument("--format", required=True, choices=[f.value for f in Format])
    publish.add_argument("--sender", help="sender recorded on the events (default file:<user>)")
    publish.add_argument("files", nargs="+", metavar="FILE")
    publish.set_defaults(func=cmd_publish)

    tail = sub.add_parser("tail", help="print a topic's events as JSON lines")
    tail.add_argument("topic")
    tail.add_argument("--from-beginning", action="store_true")
    tail.add_argument("--max", type=int, help="stop after N events")
    tail.add_argument("--idle", type=float, help="stop after this many seconds without events")
    tail.set_defaults(func=cmd_tail)

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

    worker = sub.add_parser("worker", help="the processors' Faust worker (several share the work)")
    worker.add_argument(
        "--log-level", default="info", choices=["crit", "error", "warn", "info", "debug"]
    )
    worker.set_defaults(func=cmd_worker)

    from projections.lake.commands import add_commands as add_lake_commands

    add_lake_commands(sub)  # sink, lake tables|optimize

    from projections.notifier.command import add_commands as add_notifier_commands

    add_notifier_commands(sub)  # notifier: FHIR Subscriptions

    from infra.demo.command import add_command as add_demo_command

    add_demo_command(sub)  # demo: a synthetic stream through a running carelog

    from infra.history.commands import add_commands as add_history_commands

    add_history_commands(sub)  # rejected list|show|redrive, lineage

    from infra.replay.commands import add_commands as add_replay_commands

    add_replay_commands(sub)  # replay --into, replay diff|promote|drop

    from privacy.commands import add_commands as add_privacy_commands

    add_privacy_commands(sub)  # erase Patient/<id>: crypto-shredding

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
    projection.set_defaults(func=cmd_projection)

    run = sub.add_parser("run", help="start everything on this machine")
    run.add_argument("--infra-only", action="store_true",
                     help="only the broker, the topics and the schema catalogue, then return")  # fmt: skip
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="lag per reader and topic, processes' last errors")
    status.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for the broker (default 5)")  # fmt: skip
    status.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args, get_settings()))
    except (BrokerError, LogError, CodecError, OSError) as exc:
        return _fail(str(exc))


if __name__ == "__main__":
    sys.exit(main())
