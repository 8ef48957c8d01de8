"""The credential of the notifier's control port, which the gateway alone may call.

A binding token minted there reads a subscription's notifications, so the port answers only
callers that send this credential, even where its address can be reached. Both processes
derive it from the master key: nothing to configure, and it changes with the master key.
"""

from __future__ import annotations

from streams.privacy.master import derived_key
from streams.settings import Settings


def control_credential(settings: Settings) -> str:
    """The Authorization header value the control port requires."""
    return "Bearer " + derived_key(settings, b"carelog notifier control port").hex()
