"""TLS for the MLLP listener: a server context, optionally requiring client certificates."""

from __future__ import annotations

import ssl
from pathlib import Path

from streams.settings import Settings


class TlsConfigError(ValueError):
    """The TLS settings are incomplete or unreadable."""


def server_context(
    cert: Path, key: Path | None = None, client_ca: Path | None = None
) -> ssl.SSLContext:
    """TLS 1.2+ server context; with `client_ca`, clients must present a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
        if client_ca is not None:
            context.load_verify_locations(cafile=client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"MLLP TLS: cannot load {cert} / {key} / {client_ca}: {exc}") from exc
    return context


def context_from_settings(settings: Settings) -> ssl.SSLContext | None:
    """None when CARELOG_MLLP_TLS_CERT is unset (plain TCP)."""
    if settings.mllp.tls_cert is None:
        if settings.mllp.tls_key is not None or settings.mllp.tls_client_ca is not None:
            raise TlsConfigError(
                "CARELOG_MLLP_TLS_KEY / CARELOG_MLLP_TLS_CLIENT_CA need CARELOG_MLLP_TLS_CERT"
            )
        return None
    return server_context(
        settings.mllp.tls_cert, settings.mllp.tls_key, settings.mllp.tls_client_ca
    )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def plain_tcp_warning(settings: Settings) -> str | None:
    """What to tell the operator when MLLP would listen beyond loopback without TLS (anyone
    who reaches the port could send messages as any sender), else None."""
    host = settings.mllp.host
    if host in LOOPBACK_HOSTS or host.startswith("127.") or settings.mllp.tls_cert is not None:
        return None
    return (
        f"warning: MLLP listens on {host}:{settings.mllp.port} without TLS: anyone who can "
        "reach the port can send messages, unauthenticated and unencrypted. Set "
        "CARELOG_MLLP_TLS_CERT and CARELOG_MLLP_TLS_KEY (TLS), and CARELOG_MLLP_TLS_CLIENT_CA "
        "so that only senders with a certificate it signed can connect (mutual TLS); or set "
        "CARELOG_MLLP_HOST=127.0.0.1."
    )


def peer_subject(peercert: dict[str, object] | None) -> str:
    """The client certificate's subject as `CN=...,O=...` (empty without one)."""
    if not peercert:
        return ""
    parts = []
    for rdn in peercert.get("subject", ()):  # type: ignore[attr-defined]
        for name, value in rdn:
            short = {"commonName": "CN", "organizationName": "O", "countryName": "C"}.get(
                name, name
            )
            parts.append(f"{short}={value}")
    return ",".join(parts)
