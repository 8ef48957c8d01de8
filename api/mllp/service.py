"""Running the MLLP listener as a process: producer, TLS, metrics port, signals, shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from api.ingest import Ingestor
from api.mllp.listener import MllpServer
from api.mllp.tls import context_from_settings, plain_tcp_warning
from streams.privacy.envelope import open_in_background
from streams.process_metrics import serve_metrics
from streams.producer import EventProducer
from streams.settings import Settings

log = logging.getLogger("carelog.mllp")


async def serve(
    settings: Settings,
    host: str,
    port: int,
    metrics_port: int | None = None,
    ready: asyncio.Event | None = None,
    **producer_overrides: Any,
) -> None:
    """Listen until SIGINT/SIGTERM, then answer what was received and stop."""
    ssl_context = context_from_settings(settings)
    if (
        warning := plain_tcp_warning(settings.amended(mllp={"host": host, "port": port}))
    ) is not None:
        log.warning(warning)
    producer = EventProducer(settings, **producer_overrides)
    open_in_background()  # the key store, read before the first message needs it
    server = MllpServer(Ingestor(producer), settings, host, port, ssl_context)
    try:
        await server.start()
        serve_metrics("mllp", settings, metrics_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        log.info("mllp listening", extra={"address": str(server.address), "tls": bool(ssl_context)})
        await stop.wait()
        log.info("mllp stopping", extra={"open_connections": len(server.connections)})
        await server.close()
    finally:
        await asyncio.to_thread(producer.close)


def producer_overrides(settings: Settings) -> dict[str, Any]:
    """MLLP senders wait for each ACK: a short linger keeps that wait short (concurrent
    connections still fill batches), and a sender learns within the gateway's delivery
    timeout that Kafka is down (AE) instead of after librdkafka's default 30 s."""
    return {"linger.ms": 2, "message.timeout.ms": settings.gateway.delivery_timeout_ms}


def run(settings: Settings, host: str, port: int, metrics_port: int | None = None) -> None:
    """Blocking entry point of `carelog mllp` (uvloop when installed)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with the gateway's dependencies
        asyncio.run(serve(settings, host, port, metrics_port, **producer_overrides(settings)))
    else:
        uvloop.run(serve(settings, host, port, metrics_port, **producer_overrides(settings)))
