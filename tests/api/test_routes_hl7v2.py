"""POST /hl7v2 against the real broker: what is acknowledged is on the log byte for byte, what
is refused is on carelog.rejected with its reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from processors.hl7v2.errors import ParseError
from processors.hl7v2.parser import parse
from schemas.events import Channel, Event, Format, InboundMessage, Rejected
from streams.keys import inbound_key
from tests.api.conftest import auth

pytestmark = pytest.mark.kafka
ER7 = {"content-type": "x-application/hl7-v2+er7"}


def segments(ack: bytes) -> list[list[str]]:
    return [s.split("|") for s in ack.decode("latin-1").split("\r") if s]


def msa(ack: bytes) -> list[list[str]]:
    return [s for s in segments(ack) if s[0] == "MSA"]


def test_one_message_is_acknowledged_and_on_the_log_byte_for_byte(
    client: TestClient, corpus: Path, appended
) -> None:
    message = (corpus / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()
    headers = auth(**ER7)
    response = client.post("/hl7v2", content=message, headers=headers)

    assert response.status_code == 200
    assert response.headers["x-request-id"] == headers["X-Request-ID"]
    assert response.headers["content-type"] == "x-application/hl7-v2+er7"
    [[_, code, control_id, *_]] = msa(response.content)
    assert (code, control_id) == ("AA", "NWH-LAB-7001")
    [(key, event)] = appended(Format.hl7v2, headers["X-Request-ID"])
    assert isinstance(event, InboundMessage)
    assert event.payload == message
    assert (event.channel, event.format, event.idempotency_key) == (
        Channel.http,
        Format.hl7v2,
        "NWH-LAB-7001",
    )
    assert event.sender == "test-sender"
    assert key == inbound_key(Format.hl7v2, message, "test-sender").encode()


def test_latin1_message_keeps_its_bytes_and_text_plain_is_accepted(
    client: TestClient, corpus: Path, appended
) -> None:
    message = (corpus / "hl7v2" / "adt_a01_latin1_zseg_v2.6.hl7").read_bytes()
    assert any(b > 0x7F for b in message)  # the point: non-UTF-8 bytes survive untouched
    headers = auth(**{"content-type": "text/plain; charset=iso-8859-1", "accept": "text/plain"})
    response = client.post("/hl7v2", content=message, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    [(_, event)] = appended(Format.hl7v2, headers["X-Request-ID"])
    assert event.payload == message


def test_wrapped_batch_gets_a_wrapped_ack_per_message(
    client: TestClient, corpus: Path, appended
) -> None:
    first = (corpus / "hl7v2" / "adt_a03_discharge_v2.5.1.hl7").read_bytes()
    second = (corpus / "hl7v2" / "vxu_v04_immunization_v2.5.1.hl7").read_bytes()
    body = (b"FHS|^~\\&|EPIC|NWH|CARELOG|CARELOG|20261103||||F-77\r"
            b"BHS|^~\\&|EPIC|NWH|CARELOG|CARELOG|20261103||||B-42\r"
            + first + second + b"BTS|2\rFTS|1\r")  # fmt: skip
    headers = auth(**ER7)
    response = client.post("/hl7v2", content=body, headers=headers)

    assert response.status_code == 200
    names = [s[0] for s in segments(response.content)]
    assert names == ["FHS", "BHS", "MSH", "MSA", "MSH", "MSA", "BTS", "FTS"]
    bhs = next(s for s in segments(response.content) if s[0] == "BHS")
    assert bhs[11] == "B-42"  # BHS-12 refers to the request's batch
    # The VXU's MSH-15 (ER) asks for enhanced acknowledgement: its stored answer is CA.
    assert [m[1] for m in msa(response.content)] == ["AA", "CA"]
    events = [e for _, e in appended(Format.hl7v2, headers["X-Request-ID"])]
    assert sorted(e.payload for e in events) == sorted([first, second])
    assert {e.headers["hl7.batch.control_id"] for e in events} == {"B-42"}


def test_several_messages_without_envelope_get_plain_acks(
    client: TestClient, corpus: Path, appended
) -> None:
    first = (corpus / "hl7v2" / "adt_a04_register_v2.3.hl7").read_bytes()
    second = (corpus / "hl7v2" / "orm_o01_order_v2.4.hl7").read_bytes()
    headers = auth(**ER7)
    response = client.post("/hl7v2", content=first + second, headers=headers)
    assert response.status_code == 200
    assert [s[0] for s in segments(response.content)] == ["MSH", "MSA", "MSH", "MSA"]
    events = [e for _, e in appended(Format.hl7v2, headers["X-Request-ID"])]
    assert sorted(e.payload for e in events) == sorted([first, second])


def test_bad_message_in_a_batch_is_refused_alone(
    client: TestClient, corpus: Path, appended
) -> None:
    good = (corpus / "hl7v2" / "siu_s12_appointment_v2.5.1.hl7").read_bytes()
    bad = (
        b"MSH|^~\\&|LAB|NWH|CARELOG|CARELOG|20261103||ORU^R01||P|2.5.1\rPID|1||MRN1\r"  # no MSH-10
    )
    headers = auth(**ER7)
    response = client.post("/hl7v2", content=good + bad, headers=headers)

    assert response.status_code == 400
    assert [m[1] for m in msa(response.content)] == ["AA", "AR"]
    err = next(s for s in segments(response.content) if s[0] == "ERR")
    assert err[2] == "MSH^1^10" and err[3].startswith("101^")
    [(_, accepted)] = appended(Format.hl7v2, headers["X-Request-ID"])
    assert accepted.payload == good
    [(_, rejected)] = appended("rejected", headers["X-Request-ID"])
    assert isinstance(rejected, Rejected)
    assert rejected.original == bad
    assert "MSH-10" in rejected.reason and rejected.stage == "gateway"


def test_repeated_separators_are_refused_at_the_edge_as_the_parser_refuses_them(
    client: TestClient, appended
) -> None:
    """MSH-2 repeating a separator: the processor could not parse it, so the gateway must not
    answer AA (it used to, and the sender later found a Rejected it was never told about)."""
    bad = b"MSH|^^\\&|LAB|NWH|CARELOG|CARELOG|20261103||ORU^R01|C77|P|2.5.1\rPID|1||MRN1\r"
    with pytest.raises(ParseError) as parsed:
        parse(bad)
    headers = auth(**ER7)
    response = client.post("/hl7v2", content=bad, headers=headers)

    assert response.status_code == 400
    [[_, code, *_]] = msa(response.content)
    err = next(s for s in segments(response.content) if s[0] == "ERR")
    assert code == "AR" and err[2] == "MSH^1^2" == parsed.value.location.replace("-", "^1^")
    assert err[3].startswith("102^")  # data type error
    assert appended(Format.hl7v2, headers["X-Request-ID"]) == []
    [(_, rejected)] = appended("rejected", headers["X-Request-ID"])
    assert isinstance(rejected, Rejected)
    assert rejected.original == bad and "MSH-2" in rejected.reason


def test_not_hl7_is_refused_with_ar_and_kept(client: TestClient, appended) -> None:
    headers = auth(**ER7)
    response = client.post("/hl7v2", content=b"hello, not HL7", headers=headers)
    assert response.status_code == 400
    [[_, code, *_]] = msa(response.content)
    assert code == "AR"
    [(_, rejected)] = appended("rejected", headers["X-Request-ID"])
    assert rejected.original == b"hello, not HL7"
    assert "MSH" in rejected.reason


def test_empty_batch_is_refused_and_kept(client: TestClient, appended) -> None:
    body = b"FHS|^~\\&|EPIC|NWH\rBHS|^~\\&|EPIC|NWH\rBTS|0\rFTS|1\r"
    headers = auth(**ER7)
    response = client.post("/hl7v2", content=body, headers=headers)
    assert response.status_code == 400
    assert msa(response.content)[0][1] == "AR"
    [(_, rejected)] = appended("rejected", headers["X-Request-ID"])
    assert rejected.original == body


def test_wrong_content_type_is_415_and_kept(client: TestClient, corpus: Path, appended) -> None:
    message = (corpus / "hl7v2" / "adt_a40_merge_v2.5.1.hl7").read_bytes()
    headers = auth(**{"content-type": "application/json"})
    response = client.post("/hl7v2", content=message, headers=headers)
    assert response.status_code == 415
    [[_, code, control_id, text]] = msa(response.content)
    assert code == "AR" and control_id  # the refused message's MSH-10 is still echoed
    assert "Content-Type" in text
    [(_, rejected)] = appended("rejected", headers["X-Request-ID"])
    assert rejected.original == message
    assert appended(Format.hl7v2, headers["X-Request-ID"]) == []


def test_unacceptable_accept_is_406_and_nothing_stored(
    client: TestClient, corpus: Path, appended
) -> None:
    message = (corpus / "hl7v2" / "mdm_t02_document_v2.5.1.hl7").read_bytes()
    headers = auth(**ER7, accept="application/json")
    response = client.post("/hl7v2", content=message, headers=headers)
    assert response.status_code == 406
    assert msa(response.content)[0][1] == "AR"
    assert appended(Format.hl7v2, headers["X-Request-ID"]) == []
    assert appended("rejected", headers["X-Request-ID"]) == []


def test_missing_token_is_401_ar_and_wrong_scope_403(
    client: TestClient, corpus: Path, appended
) -> None:
    message = (corpus / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()
    headers = auth(**ER7)
    del headers["Authorization"]
    response = client.post("/hl7v2", content=message, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert msa(response.content)[0][1] == "AR"

    fhir_only = auth("system/*.write", **ER7)  # *.write covers FHIR types, not the HL7 feed
    response = client.post("/hl7v2", content=message, headers=fhir_only)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert "system/hl7v2.write" in msa(response.content)[0][3]
    for h in (headers, fhir_only):
        assert appended(Format.hl7v2, h["X-Request-ID"]) == []
        assert appended("rejected", h["X-Request-ID"]) == []


def test_enhanced_mode_is_answered_with_commit_codes(
    client: TestClient, corpus: Path, appended: Callable[..., list[tuple[bytes | None, Event]]]
) -> None:
    """MSH-15 asks for enhanced acknowledgement: CA (stored), over HTTP always answered."""
    message = (corpus / "hl7v2" / "oru_r01_cbc_v2.5.1.hl7").read_bytes()
    asking = message.replace(b"|P|2.5.1\r", b"|P|2.5.1|||NE|AL\r", 1)
    headers = auth(**ER7)
    response = client.post("/hl7v2", content=asking, headers=headers)
    assert response.status_code == 200
    [[_, code, control_id, *_]] = msa(response.content)
    assert (code, control_id) == ("CA", "NWH-LAB-7001")
    [(_, event)] = appended(Format.hl7v2, headers["X-Request-ID"])
    assert isinstance(event, InboundMessage) and event.payload == asking
