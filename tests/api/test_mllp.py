"""The MLLP listener against the real broker: every ACK read back from the log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

import pytest

from api.mllp.listener import MllpServer
from schemas.events import Channel, Format, InboundMessage, Rejected
from streams.keys import inbound_key
from streams.settings import Settings
from streams.topics import REJECTED, inbound_topic
from tests.api.mllp_support import MllpClient, TopicReader, enhanced, hl7, running_listener

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def listener(kafka_settings: Settings) -> Iterator[MllpServer]:
    settings = kafka_settings.amended(mllp={"max_message_bytes": 4000})
    with running_listener(settings) as server:
        yield server


@pytest.fixture
def inbound(kafka_settings: Settings) -> Iterator[TopicReader]:
    reader = TopicReader(kafka_settings, inbound_topic(Format.hl7v2))
    yield reader
    reader.close()


@pytest.fixture
def rejected(kafka_settings: Settings) -> Iterator[TopicReader]:
    reader = TopicReader(kafka_settings, REJECTED)
    yield reader
    reader.close()


def by_control_id(reader: TopicReader) -> dict[str, tuple[bytes | None, InboundMessage, int]]:
    out = {}
    for key, event, partition in reader.read():
        assert isinstance(event, InboundMessage)
        assert event.idempotency_key is not None
        out[event.idempotency_key] = (key, event, partition)
    return out


def test_many_concurrent_connections_every_message_acked_and_on_the_log_byte_for_byte(
    listener: MllpServer, inbound: TopicReader
) -> None:
    connections, per_connection = 20, 20
    sent: dict[str, bytes] = {}

    async def sender(n: int) -> list[tuple[str, str, str]]:
        client = await MllpClient.connect(listener.port)
        answers = []
        for i in range(per_connection):
            control_id, payload = hl7(patient=f"P{n}-{i % 3}")
            sent[control_id] = payload
            ack = await client.call(payload)
            answers.append((control_id, ack.code, ack.control_id))
        await client.close()
        return answers

    async def main() -> list[list[tuple[str, str, str]]]:
        return await asyncio.gather(*(sender(n) for n in range(connections)))

    results = [a for conn in asyncio.run(main()) for a in conn]
    assert len(results) == connections * per_connection
    assert all(code == "AA" and echoed == cid for cid, code, echoed in results)

    stored = by_control_id(inbound)
    assert set(sent) <= set(stored)
    for control_id, payload in sent.items():
        key, event, _ = stored[control_id]
        assert event.payload == payload  # the exact bytes between VT and FS
        assert event.channel is Channel.mllp and event.format is Format.hl7v2
        assert event.sender == "SUNQUEST/NWH_LAB"
        assert event.headers["mllp.peer"].startswith("127.0.0.1:")
        assert key == inbound_key(Format.hl7v2, payload, event.sender).encode()


def test_pipelined_messages_are_acked_in_order_and_kept_in_order(
    listener: MllpServer, inbound: TopicReader
) -> None:
    messages = [hl7(patient="PIPE-1") for _ in range(50)]

    async def main() -> list[str]:
        client = await MllpClient.connect(listener.port)
        await client.send_raw(b"".join(b"\x0b" + p + b"\x1c\r" for _, p in messages))
        acks = [await client.ack() for _ in messages]
        await client.close()
        assert all(a.code == "AA" for a in acks)
        return [a.control_id for a in acks]

    assert asyncio.run(main()) == [cid for cid, _ in messages]
    # One patient, one key, one partition: the log keeps the order they were sent in.
    ids = {cid for cid, _ in messages}
    on_log = [e.idempotency_key for _, e, _ in inbound.read() if e.idempotency_key in ids]  # type: ignore[union-attr]
    assert on_log == [cid for cid, _ in messages]


def test_broken_framing_is_refused_with_ar_and_kept_on_rejected(
    listener: MllpServer, rejected: TopicReader, inbound: TopicReader
) -> None:
    control_id, payload = hl7()
    no_start_id, no_start = hl7()

    async def main() -> list[tuple[str, str]]:
        client = await MllpClient.connect(listener.port)
        await client.send_raw(b"stray bytes\x0b" + payload + b"\x1c\r")  # junk, then a good frame
        await client.send_raw(no_start + b"\x1c\r")  # a frame without VT
        acks = [await client.ack() for _ in range(3)]
        await client.close()
        return [(a.code, a.control_id) for a in acks]

    # The refusal of a frame without VT still answers its MSH-10 when one can be read.
    assert asyncio.run(main()) == [("AR", ""), ("AA", control_id), ("AR", no_start_id)]
    refused = [e for _, e, _ in rejected.read() if isinstance(e, Rejected)]
    originals = {e.original: e for e in refused}
    assert b"stray bytes" in originals
    assert "outside a frame" in originals[b"stray bytes"].reason
    assert no_start in originals
    assert "without a start block" in originals[no_start].reason
    assert originals[no_start].format == "hl7v2" and originals[no_start].stage == "gateway"
    assert control_id in {e.idempotency_key for _, e, _ in inbound.read()}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("broken", "field"),
    [
        (b"MSH|^~\\&|LAB|FAC|CARELOG|CARELOG|20260101||ORU^R01|CTRL1|P", "MSH-12"),
        (b"MSH|^~\\&|LAB|FAC|CARELOG|CARELOG|20260101|||CTRL2|P|2.5.1", "MSH-9"),
        (b"PID|1||X^^^Y", "MSH"),
        (b"MSH\rPID|1||X^^^Y", "MSH-1"),
        # Separators the processor's parser would refuse are refused here, not acknowledged.
        (b"MSH|^^\\&|LAB|FAC|CARELOG|CARELOG|20260101||ORU^R01|CTRL3|P|2.5.1\rPID|1||X", "MSH-2"),
        (
            b"MSH|^~\\&|LAB|FAC|CARELOG|CARELOG|20260101||ORU^R01|CTRL4|P|2.5.1\rpid|1||X",
            "segment 2",
        ),
    ],
)
def test_unparseable_msh_gets_ar_naming_the_field(
    listener: MllpServer, rejected: TopicReader, broken: bytes, field: str
) -> None:
    async def main() -> str:
        client = await MllpClient.connect(listener.port)
        ack = await client.call(broken)
        await client.close()
        assert ack.code == "AR"
        return ack.err

    err = asyncio.run(main())
    segment, _, number = field.partition("-")
    location = f"{segment}^1^{number}" if number else segment
    assert err.split("|")[2] == location
    kept = [e for _, e, _ in rejected.read() if isinstance(e, Rejected) and e.original == broken]
    assert len(kept) == 1 and field in kept[0].reason and field in kept[0].operation_outcome


def test_oversize_message_gets_ar_and_a_truncated_copy_on_rejected(
    listener: MllpServer, rejected: TopicReader
) -> None:
    control_id, payload = hl7()
    big = payload + b"NTE|1||" + b"x" * 6000 + b"\r"  # over the 4000-byte limit of this listener
    ok_id, ok = hl7()

    async def main() -> list[tuple[str, str]]:
        client = await MllpClient.connect(listener.port)
        first = await client.call(big)
        # A message over the limit ends the connection, however the bytes were split.
        assert await asyncio.wait_for(client.reader.read(), 15) == b""
        await client.close()
        client = await MllpClient.connect(listener.port)
        second = await client.call(ok)
        await client.close()
        return [(first.code, first.control_id), (second.code, second.control_id)]

    assert asyncio.run(main()) == [("AR", control_id), ("AA", ok_id)]
    kept = [
        e
        for _, e, _ in rejected.read()
        if isinstance(e, Rejected) and e.headers.get("original.size") == str(len(big))
    ]
    assert len(kept) == 1
    assert big.startswith(kept[0].original) and len(kept[0].original) < len(big)
    assert kept[0].headers["original.truncated"] == "true"
    assert "larger than the limit of 4000 bytes" in kept[0].reason


def test_idle_connections_are_closed(kafka_settings: Settings) -> None:
    settings = kafka_settings.amended(mllp={"idle_timeout_seconds": 0.5})
    with running_listener(settings) as server:

        async def main() -> tuple[str, float]:
            client = await MllpClient.connect(server.port)
            ack = await client.call(hl7()[1])  # activity resets the clock
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await asyncio.wait_for(client.reader.read(), 10) == b""  # closed by the server
            return ack.code, loop.time() - started

        code, waited = asyncio.run(main())
        assert code == "AA"
        assert 0.4 <= waited < 5
        assert not server.connections


def test_kafka_unreachable_answers_ae_never_aa(kafka_settings: Settings) -> None:
    from tests.kafka_fixture import free_port

    down = kafka_settings.amended(kafka={"cluster": f"127.0.0.1:{free_port()}"})
    with running_listener(down, **{"message.timeout.ms": 1500}) as server:

        async def main() -> list[str]:
            client = await MllpClient.connect(server.port)
            codes = [(await client.call(hl7()[1])).code for _ in range(3)]
            codes.append((await client.call(b"PID|no msh")).code)  # even a refusal is not claimed
            codes.append((await client.call(enhanced(hl7()[1], "AL"))).code)  # enhanced mode
            await client.close()
            return codes

        assert asyncio.run(main()) == ["AE", "AE", "AE", "AE", "CE"]


def test_metrics_count_acks_by_code_and_logs_hold_no_patient_data(
    listener: MllpServer, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import REGISTRY

    from streams.json_logs import JsonFormatter

    def acks(code: str) -> float:
        return REGISTRY.get_sample_value("carelog_mllp_acks_total", {"code": code}) or 0.0

    before = {code: acks(code) for code in ("AA", "AR")}
    _, payload = hl7(patient="SECRET-MRN-991")

    async def main() -> list[str]:
        client = await MllpClient.connect(listener.port)
        codes = [(await client.call(payload)).code, (await client.call(b"PID|SECRET-MRN-991")).code]
        await client.close()
        return codes

    with caplog.at_level("INFO", logger="carelog.mllp"):
        assert asyncio.run(main()) == ["AA", "AR"]
    assert acks("AA") == before["AA"] + 1 and acks("AR") == before["AR"] + 1
    lines = [JsonFormatter().format(r) for r in caplog.records]
    assert any('"message":"mllp input refused"' in line for line in lines)
    assert not any("SECRET-MRN-991" in line or "Haddad" in line for line in lines)


def test_enhanced_mode_al_gets_a_commit_accept_once_on_the_log(
    listener: MllpServer, inbound: TopicReader
) -> None:
    control_id, payload = hl7()
    message = enhanced(payload, "AL", "NE")

    async def main() -> tuple[str, str, str]:
        client = await MllpClient.connect(listener.port)
        ack = await client.call(message)
        await client.close()
        return ack.code, ack.control_id, ack.err

    assert asyncio.run(main()) == ("CA", control_id, "")
    _, event, _ = by_control_id(inbound)[control_id]
    assert event.payload == message


def test_enhanced_mode_ne_and_er_on_success_get_no_ack(
    listener: MllpServer, inbound: TopicReader
) -> None:
    ne_id, ne = hl7()
    er_id, er = hl7()
    su_id, su = hl7()
    last_id, last = hl7()  # original mode: AA

    async def main() -> list[tuple[str, str]]:
        client = await MllpClient.connect(listener.port)
        await client.send_raw(b"".join(
            b"\x0b" + m + b"\x1c\r"
            for m in (enhanced(ne, "NE"), enhanced(er, "ER"), enhanced(su, "SU"), last)
        ))  # fmt: skip
        # ACKs go out in arrival order: whatever came first would be read here.
        acks = [await client.ack(), await client.ack()]
        await client.close()
        return [(a.code, a.control_id) for a in acks]

    assert asyncio.run(main()) == [("CA", su_id), ("AA", last_id)]
    assert {ne_id, er_id, su_id, last_id} <= set(by_control_id(inbound))  # all stored


def test_enhanced_mode_refusal_gets_commit_reject_with_err_and_su_gets_none(
    listener: MllpServer, rejected: TopicReader
) -> None:
    al_id, al = hl7()
    _, su = hl7()
    ok_id, ok = hl7()
    al_refused, su_refused = enhanced(al, "AL"), enhanced(su, "SU")

    async def main() -> list[tuple[str, str, str]]:
        client = await MllpClient.connect(listener.port)
        # Frames without a start block (VT): refused, their MSH still readable.
        await client.send_raw(su_refused + b"\x1c\r" + al_refused + b"\x1c\r")
        await client.send(enhanced(ok, "ER"))  # stored: no ACK under ER
        await client.send(ok.replace(ok_id.encode(), b"LAST-" + ok_id.encode()))
        acks = [await client.ack(), await client.ack()]
        await client.close()
        return [(a.code, a.control_id, a.err) for a in acks]

    [(code, control_id, err), last] = asyncio.run(main())
    assert (code, control_id) == ("CR", al_id)
    assert err.startswith("ERR|") and "HL70357" in err
    assert last[:2] == ("AA", f"LAST-{ok_id}")
    originals = {e.original for _, e, _ in rejected.read() if isinstance(e, Rejected)}
    assert {al_refused, su_refused} <= originals  # kept, ACK or not


def test_an_unterminated_frame_past_the_size_limit_is_refused_and_the_connection_closed(
    listener: MllpServer, rejected: TopicReader
) -> None:
    """No end block in sight: the listener does not read on for ever (limit 4000 here)."""
    control_id, payload = hl7()
    endless = b"\x0b" + payload + b"NTE|1||" + b"x" * 6000  # and no FS
    anonymous = b"\x0b" + b"y" * 6000  # nothing to answer: just closed

    async def main() -> tuple[str, str, bytes]:
        client = await MllpClient.connect(listener.port)
        await client.send_raw(endless)
        ack = await client.ack(timeout=15)
        closed = await asyncio.wait_for(client.reader.read(), 15)
        await client.close()
        client = await MllpClient.connect(listener.port)
        await client.send_raw(anonymous)
        assert await asyncio.wait_for(client.reader.read(), 15) == b""
        await client.close()
        return ack.code, ack.control_id, closed

    assert asyncio.run(main()) == ("AR", control_id, b"")
    kept = [e for _, e, _ in rejected.read() if isinstance(e, Rejected)]
    heads = {bytes(e.original[:20]): e for e in kept}
    assert heads[payload[:20]].headers["original.truncated"] == "true"
    assert "larger than the limit of 4000 bytes" in heads[payload[:20]].reason
    assert b"y" * 20 in heads  # kept too, though nobody could be answered


def test_a_sender_trickling_a_frame_is_closed_at_the_frame_deadline(
    kafka_settings: Settings, rejected: TopicReader
) -> None:
    """Slowloris: a byte now and then keeps a connection from being idle, not a frame open."""
    settings = kafka_settings.amended(mllp={"frame_timeout_seconds": 1.0})
    control_id, payload = hl7()
    with running_listener(settings) as server:

        async def slow_but_in_time() -> list[str]:
            """Each frame ends within the deadline, the two together do not: both served."""
            client = await MllpClient.connect(server.port)
            for _, message in (hl7(), hl7()):
                wire = b"\x0b" + message + b"\x1c\r"
                for piece in (wire[:100], wire[100:300], wire[300:]):
                    await client.send_raw(piece)
                    await asyncio.sleep(0.3)
            codes = [(await client.ack()).code, (await client.ack()).code]
            await client.close()
            return codes

        assert asyncio.run(slow_but_in_time()) == ["AA", "AA"]

        async def main() -> tuple[str, str, float]:
            client = await MllpClient.connect(server.port)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await client.send_raw(b"\x0b" + payload[:200])

            async def trickle() -> None:
                for byte in payload[200:]:
                    await asyncio.sleep(0.1)
                    await client.send_raw(bytes([byte]))

            trickling = asyncio.ensure_future(trickle())
            try:
                ack = await client.ack(timeout=15)
                assert await asyncio.wait_for(client.reader.read(), 15) == b""
            finally:
                trickling.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await trickling
            waited = loop.time() - started
            await client.close()
            return ack.code, ack.control_id, waited

        code, answered, waited = asyncio.run(main())
        assert (code, answered) == ("AR", control_id)
        assert 0.9 <= waited < 10
        deadline = time.monotonic() + 10  # the listener's side closes at the latest after
        while server.connections and time.monotonic() < deadline:  # its linger
            time.sleep(0.05)
        assert not server.connections
    [kept] = [
        e for _, e, _ in rejected.read()
        if isinstance(e, Rejected) and e.original.startswith(payload[:200])
    ]  # fmt: skip
    assert "not finished within 1 s" in kept.reason


def test_connections_over_the_cap_are_closed_at_once_and_counted(kafka_settings: Settings) -> None:
    from prometheus_client import REGISTRY

    def refused() -> float:
        labels = {"reason": "limit"}
        return REGISTRY.get_sample_value("carelog_mllp_connections_refused_total", labels) or 0.0

    settings = kafka_settings.amended(mllp={"max_connections": 2})
    before = refused()
    with running_listener(settings) as server:

        async def main() -> list[str]:
            first = await MllpClient.connect(server.port)
            second = await MllpClient.connect(server.port)
            codes = [(await first.call(hl7()[1])).code, (await second.call(hl7()[1])).code]
            third = await MllpClient.connect(server.port)  # one too many
            assert await asyncio.wait_for(third.reader.read(), 15) == b""
            await third.close()
            await first.close()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while len(server.connections) > 1 and loop.time() < deadline:
                await asyncio.sleep(0.02)  # until the listener saw the close
            fourth = await MllpClient.connect(server.port)  # a slot is free again
            codes.append((await fourth.call(hl7()[1])).code)
            await fourth.close()
            await second.close()
            return codes

        assert asyncio.run(main()) == ["AA", "AA", "AA"]
    assert refused() == before + 1
