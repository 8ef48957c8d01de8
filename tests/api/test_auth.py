"""Bearer tokens: HS256 with the secret, RS256/ES256 with a PEM key or a JWKS, claims checked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.testclient import TestClient

from api.security.dev_token import mint_token
from schemas.events import Format
from tests.api.conftest import PATIENT_JSON, SECRET, auth

pytestmark = pytest.mark.kafka
FHIR = {"content-type": "application/fhir+json"}


def post(client: TestClient, bearer: str) -> int:
    headers = {**FHIR, "Authorization": f"Bearer {bearer}"}
    return client.post("/fhir/Patient", content=PATIENT_JSON, headers=headers).status_code


def claims(**extra: object) -> dict[str, object]:
    now = int(time.time())
    return {
        "sub": "lab-system",
        "scope": "system/Patient.write",
        "iat": now,
        "exp": now + 300,
        **extra,
    }


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def forge_hs256(payload: dict[str, object], secret: bytes) -> str:
    """An HS256 token made by hand (PyJWT itself refuses a PEM key as an HMAC secret)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(payload).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_hs256_token_claims_are_checked(make_client: Callable[..., TestClient]) -> None:
    client = make_client(auth={"audience": "carelog", "issuer": "https://idp.test"})
    good = claims(aud="carelog", iss="https://idp.test")
    assert post(client, jwt.encode(good, SECRET, "HS256")) == 202
    assert post(client, jwt.encode({**good, "aud": "other"}, SECRET, "HS256")) == 401
    assert post(client, jwt.encode({**good, "iss": "https://evil.test"}, SECRET, "HS256")) == 401
    assert post(client, jwt.encode({**good, "exp": int(time.time()) - 120}, SECRET, "HS256")) == 401
    assert post(client, jwt.encode(good, "another-secret-" + "y" * 40, "HS256")) == 401
    no_exp = {k: v for k, v in good.items() if k != "exp"}
    assert post(client, jwt.encode(no_exp, SECRET, "HS256")) == 401
    assert post(client, jwt.encode(good, None, "none")) == 401
    assert post(client, "not-a-jwt") == 401


def test_rs256_with_a_pem_key(
    make_client: Callable[..., TestClient], rsa_key: rsa.RSAPrivateKey
) -> None:
    client = make_client(auth={"public_key": pem(rsa_key), "hs256_secret": None})
    assert post(client, jwt.encode(claims(), rsa_key, "RS256")) == 202
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert post(client, jwt.encode(claims(), other, "RS256")) == 401
    # With a public key configured and no secret, HS256 tokens are refused (no dev fallback),
    # including one "signed" with the public key as an HMAC secret (algorithm confusion).
    assert post(client, mint_token(SECRET, "system/Patient.write")) == 401
    assert post(client, forge_hs256(claims(), pem(rsa_key).encode())) == 401


def test_es256_with_a_pem_key(make_client: Callable[..., TestClient]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    client = make_client(auth={"public_key": pem(key), "hs256_secret": None})
    assert post(client, jwt.encode(claims(), key, "ES256")) == 202
    assert (
        post(client, jwt.encode(claims(), ec.generate_private_key(ec.SECP256R1()), "ES256")) == 401
    )


@pytest.fixture
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    server.shutdown()


def test_rs256_through_a_jwks(
    make_client: Callable[..., TestClient], rsa_key: rsa.RSAPrivateKey, jwks_url: str
) -> None:
    client = make_client(auth={"jwks_url": jwks_url, "hs256_secret": None})
    assert post(client, jwt.encode(claims(), rsa_key, "RS256", headers={"kid": "k1"})) == 202
    assert post(client, jwt.encode(claims(), rsa_key, "RS256", headers={"kid": "unknown"})) == 401


def test_auth_disabled_takes_the_client_address_as_sender(
    make_client: Callable[..., TestClient], appended
) -> None:
    client = make_client(auth={"disabled": True})
    headers = auth(**FHIR)
    del headers["Authorization"]
    response = client.post("/fhir/Patient", content=PATIENT_JSON, headers=headers)
    assert response.status_code == 202
    [(_, event)] = appended(Format.fhir, headers["X-Request-ID"])
    assert event.sender.startswith("ip:")
