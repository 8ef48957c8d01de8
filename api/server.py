"""Serving the gateway with uvicorn (httptools and uvloop when installed)."""

from __future__ import annotations

import logging

import uvicorn

from api.json_logs import configure
from streams.settings import Settings


def serve(
    settings: Settings, host: str | None = None, port: int | None = None, workers: int = 1
) -> None:
    configure()
    log_config = None  # keep our JSON handler; uvicorn's own access log is replaced by ours
    options = {
        "host": host or settings.gateway_host,
        "port": port or settings.gateway_port,
        "log_config": log_config,
        "access_log": False,
        "http": "auto",  # httptools if installed
        "loop": "auto",  # uvloop if installed
        # Client addresses key the rate limits: never take them from X-Forwarded-For.
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
    }
    logging.getLogger("carelog.gateway").info(
        "gateway starting", extra={"host": options["host"], "port": options["port"],
                                   "workers": workers, "kafka": settings.bootstrap})  # fmt: skip
    if workers > 1:
        uvicorn.run("api.server:app_from_environment", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        from api.app import create_app

        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]


def app_from_environment() -> object:
    """Factory for worker processes: each reads the settings from the environment."""
    from api.app import create_app

    configure()
    return create_app()
