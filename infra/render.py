"""Events as JSON lines for people: bytes shown safely, never raw."""

from __future__ import annotations

import base64
import dataclasses
from datetime import datetime
from typing import Any

import orjson

from schemas.events import Event


def safe_value(value: Any) -> Any:
    """UTF-8 text stays text (JSON escapes control characters); other bytes become base64."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: safe_value(v) for k, v in value.items()}
    return value


def event_json(event: Event, **position: Any) -> str:
    body = {f.name: safe_value(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return orjson.dumps({"event": type(event).__name__, **position, **body}).decode()
