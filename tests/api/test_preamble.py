"""The one route preamble (api/preamble.py), the same on the four ingest routes: admit (401)
before negotiate (406) before the scope (403) before the body's size (413) before its
Content-Type (415, kept on carelog.rejected), each refusal rendered the route's way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import httpx
import pytest
from starlette.testclient import TestClient

from tests.api.conftest import ALL_SCOPES, auth

pytestmark = pytest.mark.kafka
LIMIT = 1000


class Route(NamedTuple):
    path: str
    content_type: str
    body: bytes
    ack: bool  # refusals answered as an HL7 ACK (else an OperationOutcome)


ROUTES = [
    Route("/devices/readings", "application/json", b"{}", False),
    Route("/fhir/Patient", "application/fhir+json", b'{"resourceType": "Patient"}', False),
    Route(
        "/dicomweb/studies",
        'multipart/related; type="application/dicom"; boundary=b',
        b"--b--",
        False,
    ),
    Route(
        "/hl7v2",
        "x-application/hl7-v2+er7",
        b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|PRE-1|P|2.5.1\r",
        True,
    ),
]
NO_SCOPE = "system/Observation.read"  # a valid token that grants none of these writes
WRITE = f"{ALL_SCOPES} system/dicom.write"  # every write of these routes
BIG = b"x" * (LIMIT + 1)


@pytest.fixture(scope="module")
def small(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client(gateway={"max_request_bytes": LIMIT}, dicom={"max_request_bytes": LIMIT})


def refused(route: Route, response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    if route.ack:
        assert "MSA|AR|" in response.text, response.text
    else:
        assert response.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.path)
def test_the_preamble_refuses_in_one_order_on_every_route(
    small: TestClient, route: Route, appended: Callable[..., list[Any]]
) -> None:
    ctype = {"content-type": route.content_type}
    # No token, and an Accept the route cannot answer: who calls comes first.
    no_token = {**ctype, "Accept": "image/png"}
    refused(route, small.post(route.path, content=route.body, headers=no_token), 401)
    # No scope, an unanswerable Accept: negotiation comes before the scope.
    headers = auth(NO_SCOPE, **ctype, Accept="image/png")
    refused(route, small.post(route.path, content=route.body, headers=headers), 406)
    # No scope, a body over the limit: the scope comes before the body is read.
    headers = auth(NO_SCOPE, **ctype)
    refused(route, small.post(route.path, content=BIG, headers=headers), 403)
    # A body over the limit in a type not taken: the size comes before the type.
    headers = auth(WRITE, **{"content-type": "text/csv"})
    refused(route, small.post(route.path, content=BIG, headers=headers), 413)
    assert appended("rejected", headers["X-Request-ID"]) == []  # a caller's refusal
    # A type not taken: 415, and the body is kept on carelog.rejected with the reason.
    headers = auth(WRITE, **{"content-type": "text/csv"})
    refused(route, small.post(route.path, content=route.body, headers=headers), 415)
    [(_, kept)] = appended("rejected", headers["X-Request-ID"])
    assert kept.original == route.body and "text/csv" in kept.reason


def test_an_hl7_refusal_is_an_ack_in_the_answer_type_negotiated(small: TestClient) -> None:
    route = ROUTES[-1]
    headers = auth(WRITE, **{"content-type": "text/csv"}, Accept="application/hl7-v2+er7")
    response = small.post(route.path, content=route.body, headers=headers)
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/hl7-v2+er7"
    assert "MSA|AR|PRE-1|" in response.text  # the body was read: its MSH-10 is echoed
