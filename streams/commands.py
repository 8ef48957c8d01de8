"""`carelog kafka|topics|publish|tail`: the log itself, from the command line.

Registered by infra/cli.py.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from schemas.errors import CodecError
from schemas.events import Channel, Format, InboundMessage
from streams.admin import admin_client, apply_catalogue, existing_topics
from streams.event_codec import decode_event, encode_event
from streams.kafka_config import client_config
from streams.keys import inbound_key
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import SCHEMAS, catalogue, inbound_topic

CONTENT_TYPES = {
    Format.hl7v2: "x-application/hl7-v2+er7",
    Format.fhir: "application/fhir+json",
    Format.dicom: "application/dicom",
    Format.device: "application/json",
}


def fail(message: str) -> int:
    """Print `carelog: message` on stderr; the exit status of a failed command."""
    print(f"carelog: {message}", file=sys.stderr)
    return 1


def add_commands(sub: Any) -> None:
    """Add `kafka`, `topics`, `publish` and `tail` to the `carelog` subparsers."""
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


def cmd_kafka(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.kafka.uses_local_broker:
        print(
            f"CARELOG_KAFKA_BOOTSTRAP={settings.kafka.cluster}: using that cluster, starting nothing"
        )
        return 0
    from infra.kafka_broker import LocalBroker  # the local broker's launcher

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
    for topic in catalogue(settings.environment, settings.kafka.partitions):
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
    from processors.inbound_owner import inbound_owner

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
        # Sealed with its patient's key when the patient has one, as the gateway does.
        sealed = encode_event(event, owner=inbound_owner(fmt, payload))
        events.append((event, Outgoing(inbound_topic(fmt), key, sealed)))
    with EventProducer(settings) as producer:
        delivered = producer.send_many(out for _, out in events)
    for (event, _), where in zip(events, delivered, strict=True):
        print(f"{event.event_id} {where.topic}[{where.partition}]@{where.offset}")
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    from infra.render import event_json, safe_value

    consumer = Consumer(
        client_config(
            settings,
            **{"group.id": f"carelog-tail-{uuid.uuid4()}", "enable.auto.commit": False},
        )
    )
    meta = consumer.list_topics(args.topic, timeout=10)
    topic_meta = meta.topics.get(args.topic)
    if topic_meta is None or topic_meta.error is not None:
        return fail(f"topic {args.topic} does not exist (carelog topics list)")
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
