"""Schemathesis against the gateway's own OpenAPI document, on the real broker: no request it
generates gets a 5xx, and every answer conforms to the document (status, type, body)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from tests.api.conftest import ALL_SCOPES, token

pytestmark = pytest.mark.kafka

# HL7 v2 bodies: framed messages with fuzzed fields, and arbitrary bytes.
_field = st.text(st.characters(codec="latin-1", exclude_characters="|\r\n"), max_size=12)
_segments = [
    b"FHS|^~\\&|A|B\r",
    b"BHS|^~\\&|A|B||||||||B1\r",
    b"BTS|1\r",
    b"FTS|1\r",
    b"MSH|^~\\&|A|B|C|D|20260101||ADT^A01|X1|P|2.5.1\r",
    b"PID|1||M1\r",
    b"\n",
    b"MSH|",
]
_er7 = st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(_segments), max_size=8).map(b"".join),  # envelopes, in any order
    st.builds(
        lambda typ, ctrl, ver, pid: (
            f"MSH|^~\\&|FUZZ|FZ|CARELOG|CL|20260101||{typ}|{ctrl}|P|{ver}\rPID|1||{pid}\r"
        ).encode("latin-1"),
        _field,
        _field,
        _field,
        _field,
    ),
)
for _type in ("x-application/hl7-v2+er7", "application/hl7-v2+er7", "application/hl7-v2"):
    schemathesis.openapi.media_type(_type, _er7)
# DICOMweb STOW-RS bodies (api/dicomweb/routes.py): arbitrary bytes as multipart/related.
schemathesis.openapi.media_type("multipart/related", st.binary(max_size=300))


BEARER = {"Authorization": f"Bearer {token(ALL_SCOPES, ttl=7200)}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]  # fmt: skip


def fuzz(operation: Any, mode: GenerationMode, statuses: Counter[tuple[str, int]]) -> Any:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        # 15 a mode and operation (30 took 24-35 s of the suite's 15-minute budget, 20 took 20-37 s)
        max_examples=15,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=BEARER)
        statuses[(operation.label, response.status_code)] += 1
        # Negative cases break the document on purpose: there only "no 5xx" applies.
        checks = CHECKS if mode is GenerationMode.POSITIVE else [not_a_server_error]
        case.validate_response(response, checks=checks, headers=BEARER)

    return check


def test_no_server_errors_and_answers_match_the_document(
    make_client: Callable[..., TestClient],
) -> None:
    app = make_client().app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {(op.method.upper(), op.path) for op in operations}
    served = {(m, r.path) for r in app.routes for m in r.methods if m != "HEAD"}
    # Every route is fuzzed (schemathesis leaves out the document's own path).
    assert documented == served - {("GET", "/openapi.json")}

    statuses: Counter[tuple[str, int]] = Counter()
    for operation, mode in itertools.product(operations, GenerationMode):
        try:
            fuzz(operation, mode, statuses)()
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # nothing to break in, e.g., GET /healthz
    # The fuzzing reached past the guards: writes were accepted and content was refused.
    assert any(status == 202 for _, status in statuses), statuses
    assert any(status in (400, 422) for _, status in statuses), statuses
    print(sorted(statuses.items()))
