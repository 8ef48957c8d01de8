"""The Faust app factory and the codec that lets agents read and write carelog events.

Agents declare `value_serializer="carelog-avro"` on their topics and receive InboundMessage,
ResourceChanged or Rejected objects; what they send is encoded the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.serializers import codecs

from schemas.events import Event
from streams.event_codec import decode_event, encode_event
from streams.json_logs import JsonFormatter, faust_logging_config
from streams.partitioner import kafka_partitioner
from streams.settings import Settings, get_settings

CODEC_NAME = "carelog-avro"


class CarelogAvroCodec(codecs.Codec):
    """Avro single-object encoding of carelog events (see schemas/codec.py)."""

    def _dumps(self, obj: Any) -> bytes:
        if isinstance(obj, bytes):  # already encoded
            return obj
        event: Event = obj
        return encode_event(event)

    def _loads(self, s: bytes) -> Any:
        return decode_event(s)


codecs.register(CODEC_NAME, CarelogAvroCodec())


class SpinnerlessWorker(faust.Worker):
    """Faust's worker without its terminal spinner: at --loglevel warn and above it writes
    cursor codes to stdout, between the JSON log lines."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None


def create_app(app_id: str, settings: Settings | None = None, **options: Any) -> faust.App:
    """A Faust app on carelog's cluster. Tables and changelogs live under var/faust/<app_id>."""
    settings = settings or get_settings()
    (settings.var_dir / "faust").mkdir(parents=True, exist_ok=True)
    defaults: dict[str, Any] = {
        "broker": f"kafka://{settings.kafka.bootstrap}",
        "value_serializer": CODEC_NAME,
        "key_serializer": "raw",
        "datadir": str(settings.var_dir / "faust" / app_id),
        "topic_replication_factor": 3 if settings.environment == "production" else 1,
        "producer_acks": -1,
        "producer_partitioner": kafka_partitioner,  # aiokafka's, at a third of the CPU
        "web_enabled": False,
        "logging_config": faust_logging_config(),  # carelog's JSON lines, as every process
        "Worker": SpinnerlessWorker,
    }
    return faust.App(app_id, **{**defaults, **options})


def keep_log_handlers(app: faust.App) -> None:
    """Faust's worker replaces the root logger's handlers when it starts (by its JSON one,
    faust_logging_config): hand it the others there are now to add back after it."""
    app.conf.loghandlers = [
        h for h in logging.getLogger().handlers if not isinstance(h.formatter, JsonFormatter)
    ]
