"""MLLP over TLS (and mutual TLS) against the real broker, with certificates made here."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.mllp.tls import server_context
from schemas.events import Format, InboundMessage
from streams.settings import Settings
from streams.topics import inbound_topic
from tests.api.mllp_support import MllpClient, TopicReader, hl7, running_listener

pytestmark = pytest.mark.kafka


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    folder: Path,
    name: str,
    subject: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0].subject if issuer else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    ca = _issue(folder, "ca", "carelog test CA", None)
    _issue(folder, "server", "localhost", ca)
    _issue(folder, "client", "lab-analyser-7", ca)
    return folder


def _client_context(pki: Path, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki / "ca.pem")
    context.check_hostname = False  # the client connects to 127.0.0.1; the cert names localhost
    if with_cert:
        context.load_cert_chain(pki / "client.pem", pki / "client.key")
    return context


async def _round_trip(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    control_id, payload = hl7()
    client = await MllpClient.connect(port, context)
    ack = await client.call(payload)
    await client.close()
    assert ack.control_id == control_id
    return control_id, ack.code


def test_tls_round_trip(kafka_settings: Settings, pki: Path) -> None:
    reader = TopicReader(kafka_settings, inbound_topic(Format.hl7v2))
    with running_listener(
        kafka_settings, server_context(pki / "server.pem", pki / "server.key")
    ) as server:
        control_id, code = asyncio.run(_round_trip(server.port, _client_context(pki, False)))
    assert code == "AA"
    events = [e for _, e, _ in reader.read() if e.idempotency_key == control_id]  # type: ignore[union-attr]
    reader.close()
    assert len(events) == 1 and isinstance(events[0], InboundMessage)
    assert events[0].headers["mllp.tls"].startswith("TLSv1.")


def test_mutual_tls_requires_a_client_certificate(kafka_settings: Settings, pki: Path) -> None:
    reader = TopicReader(kafka_settings, inbound_topic(Format.hl7v2))
    context = server_context(pki / "server.pem", pki / "server.key", client_ca=pki / "ca.pem")
    with running_listener(kafka_settings, context) as server:
        control_id, code = asyncio.run(_round_trip(server.port, _client_context(pki, True)))
        assert code == "AA"
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            asyncio.run(_round_trip(server.port, _client_context(pki, False)))
    events = [e for _, e, _ in reader.read() if e.idempotency_key == control_id]  # type: ignore[union-attr]
    reader.close()
    assert events[0].headers["mllp.tls.client"] == "CN=lab-analyser-7"
