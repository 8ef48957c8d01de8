"""The MLLP listener: HL7 v2 over TCP (or TLS), one ACK per message once Kafka has it.

Each connection decodes frames in arrival order and appends every message at once, so a
sender that pipelines (sends several messages before reading ACKs) is served concurrently;
the ACKs still go back in the order the messages came. AA means the InboundMessage is on
carelog.inbound.hl7v2; AR means the input can never be accepted as sent (broken framing, no
usable MSH, too large) and has been kept on carelog.rejected with the reason; AE means it
could not be stored now (Kafka did not confirm) and the sender should retry. A message
asking for enhanced acknowledgement (MSH-15/16) is answered CA / CR / CE instead, or not at
all when its MSH-15 says so (api/hl7v2/ack.py). Each frame goes through the HL7 v2 ingest
sequence (api/hl7v2/ingest_sequence.py, the same as POST /hl7v2's), the connection being
its door; what is the listener's own is the framing, the framing faults and the ordered
replies.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, cast

from api.hl7v2.ack import AckCode, accept_ack_wanted, answer_code, build_ack
from api.hl7v2.ingest_sequence import Answer, ingest, msh_or_none, refuse
from api.ingest import Ingestor
from api.loop_bridge import LoopBridge
from api.mllp import metrics
from api.mllp.framing import Broken, Fault, Frame, FrameDecoder, frame
from api.mllp.tls import peer_subject
from schemas.events import Channel, Format, InboundMessage
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import MshHeader
from schemas.outcome import Issue
from streams.errors import DeliveryFailed
from streams.producer import Delivered
from streams.settings import Settings

log = logging.getLogger("carelog.mllp")

HL7_CONTENT_TYPE = "x-application/hl7-v2+er7"
MAX_IN_FLIGHT = 512  # messages a connection may have awaiting Kafka before reading pauses
# After giving up on a sender: how long its last ACK and our end of stream (FIN) get to reach
# it while what it still sends is read and dropped. Closing at once with its bytes unread
# would reset the connection, and a reset can destroy the ACK before the sender reads it.
LINGER_SECONDS = 2.0

_ids = itertools.count(1)


def answer(
    header: MshHeader | None,
    outcome: AckCode,
    text: str = "",
    error: str = "application_error",
    location: str = "",
) -> bytes:
    """The framed ACK of `outcome` (AA/AE/AR, or CA/CE/CR in enhanced mode), or b"" when the
    message's MSH-15 asked for no ACK of this outcome (NE, ER on success, SU on error)."""
    if not accept_ack_wanted(header, outcome):
        metrics.ACKS_WITHHELD.inc()
        return b""
    metrics.ACKS_BY_CODE[answer_code(header, outcome)].inc()
    ack = build_ack(header, outcome, text, error, location)
    # read_msh decodes as latin-1, so this gives back the sender's own bytes for its fields.
    return frame(ack.encode("latin-1", "replace"))


async def _unanswered(keep: Coroutine[Any, Any, str | None]) -> Answer[bytes]:
    """Keep refused input whose sender gets no ACK (gone, or its MSH unreadable)."""
    await keep
    return Answer(AckCode.reject, b"")


def sender_of(header: MshHeader | None, peer: str) -> str:
    """MSH-3/MSH-4 (sending application / facility), else the peer address."""
    if header is not None:
        named = "/".join(p for p in (header.sending_application, header.sending_facility) if p)
        if named:
            return named
    return f"mllp:{peer}"


class Reply:
    """The ACK owed for one message, in arrival order; `data` is set once it is known."""

    __slots__ = ("data", "started")

    def __init__(self) -> None:
        self.data: bytes | None = None
        self.started = time.perf_counter()


class MllpConnection(asyncio.Protocol):
    def __init__(self, server: MllpServer) -> None:
        self.server = server
        self.ingestor = server.ingestor
        self.id = next(_ids)
        self.decoder = FrameDecoder(server.settings.mllp.max_message_bytes)
        self.pending: deque[Reply] = deque()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.headers: dict[str, str] = {}
        self.seq = 0
        self.last_active = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.frame_started: float | None = None  # when the frame (or stray run) open began
        self.frame_timer: asyncio.TimerHandle | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.eof = False
        self.closing = False  # given up on the sender: input dropped, close once answered
        self.linger: asyncio.TimerHandle | None = None
        self.admitted = False  # counted among the server's connections

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        host, port, *_ = transport.get_extra_info("peername") or ("?", 0)
        self.peer = f"{host}:{port}"
        if len(self.server.connections) >= self.server.max_connections:
            self.closing = True
            metrics.CONNECTIONS_REFUSED.labels("limit").inc()
            log.warning(
                "mllp connection refused: %d connections open, the limit "
                "(CARELOG_MLLP_MAX_CONNECTIONS)",
                len(self.server.connections),
                extra={"conn": self.id, "peer": self.peer},
            )
            self.transport.close()
            return
        self.admitted = True
        self.headers = {"mllp.peer": self.peer, "mllp.listener": self.server.address}
        if (tls := transport.get_extra_info("ssl_object")) is not None:
            self.headers["mllp.tls"] = str(tls.version())
            if subject := peer_subject(transport.get_extra_info("peercert")):
                self.headers["mllp.tls.client"] = subject
        self.server.connections.add(self)
        metrics.CONNECTIONS.inc()
        metrics.OPEN_CONNECTIONS.inc()
        self.last_active = self.server.loop.time()
        self._arm_idle_timer(self.server.idle_timeout)
        log.info(
            "mllp connection opened", extra={"conn": self.id, "peer": self.peer, **self.headers}
        )

    def data_received(self, data: bytes) -> None:
        if self.closing:  # bytes already on their way when reading stopped
            return
        decoder = self.decoder
        items = decoder.feed(data)
        if items or decoder.open:  # whitespace between frames is no activity
            self.last_active = self.server.loop.time()
        for item in items:
            try:
                if type(item) is Frame:
                    self._on_frame(item.payload)
                else:
                    assert isinstance(item, Broken)
                    self._on_broken(item)
            except Exception:  # a bug, not the sender's fault: answer AE in turn, keep serving
                log.exception("mllp message handling failed", extra={"conn": self.id})
                reply = Reply()
                reply.data = answer(None, AckCode.error, "internal error")
                self.pending.append(reply)
                self._flush()
            if type(item) is Broken and item.fault is Fault.too_large:
                self._close_after_replies()  # what follows is not read: the sender resends it
                return
        if decoder.overflowing:  # no end block within the limit: stop reading on
            self._abandon(Fault.too_large if decoder.open else Fault.outside_frame)
            return
        if not decoder.open:
            self.frame_started = None
        elif items or self.frame_started is None:  # a frame began in these bytes
            self.frame_started = self.server.loop.time()
            self._arm_frame_timer(self.server.frame_timeout)
        if len(self.pending) >= MAX_IN_FLIGHT and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        """The sender is done sending: answer what it sent, then close."""
        self.eof = True
        if self.closing:
            if not self.pending and self.transport is not None:
                self.transport.close()
            return True
        for item in self.decoder.close():  # a frame cut off by the end of input
            assert isinstance(item, Broken)
            metrics.BROKEN.inc()
            self._enqueue(self._refuse(item, msh_or_none(item.head)))
        if not self.pending and self.transport is not None:
            self.transport.close()
        return True  # half-close: keep the write side open for the ACKs still owed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.admitted:  # refused at the door (the connection cap)
            return
        for timer in (self.idle_timer, self.frame_timer, self.linger):
            if timer is not None:
                timer.cancel()
        self.server.connections.discard(self)
        metrics.OPEN_CONNECTIONS.dec()
        for item in self.decoder.close():  # a message cut off by the close: keep it, no ACK
            if isinstance(item, Broken):
                self.server.track(self._refuse(item, None, ack=False))
        log.info(
            "mllp connection closed",
            extra={
                "conn": self.id,
                "peer": self.peer,
                "unacknowledged": len(self.pending),
                "error": str(exc) if exc else None,
            },
        )

    def pause_writing(self) -> None:  # the sender does not read its ACKs: stop reading too
        self.writing_paused = True
        if not self.reading_paused and not self.closing and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._maybe_resume_reading()

    # -- messages ---------------------------------------------------------------------------

    def _on_frame(self, payload: bytes) -> None:
        metrics.FRAMES.inc()
        reply = Reply()
        self.pending.append(reply)
        # The hot path: no task per message; the broker's confirmations reach the loop in
        # batches (LoopBridge) and each one settles its reply.
        try:
            refusal = ingest(self, payload, partial(self._settle, reply))
        except Exception:  # a bug, not the sender's fault: answer AE in turn, keep serving
            log.exception("mllp append failed", extra={"conn": self.id})
            if reply.data is None:
                reply.data = answer(msh_or_none(payload), AckCode.error, "internal error")
                self._flush()
            return
        if refusal is not None:
            self._settle_later(reply, refusal)

    def _settle(self, reply: Reply, outcome: Answer[bytes]) -> None:
        reply.data = outcome.ack
        self._flush()

    # -- the ingest sequence's door (api/hl7v2/ingest_sequence.py) --------------------------

    def sender(self, header: MshHeader | None) -> str:
        return sender_of(header, self.peer)

    def frame_fault(self, exc: FormatError) -> str:
        return f"not a well-formed HL7 v2 message: {exc}"

    def event(self, message: bytes, header: MshHeader, sender: str) -> InboundMessage:
        self.seq += 1
        return InboundMessage.received(
            message,
            channel=Channel.mllp,
            format=Format.hl7v2,
            content_type=HL7_CONTENT_TYPE,
            sender=sender,
            idempotency_key=header.control_id,
            correlation_id=f"mllp-{self.id}-{self.seq}",
            headers=self.headers,
        )

    def produce(
        self,
        event: InboundMessage,
        key: str,
        then: Callable[[Delivered | DeliveryFailed], None],
        owner: str | None,
    ) -> None:
        self.ingestor.produce(event, key, self.server.bridge.relay(then), owner)

    def not_stored(self, event: InboundMessage, header: MshHeader, exc: Exception) -> str:
        log.error(
            "mllp message not stored: Kafka did not confirm",
            extra={
                "conn": self.id,
                "sender": event.sender,
                "control_id": header.control_id,
                "event_id": event.event_id,
                "error": str(exc),
            },
        )
        return "not stored, retry later: the log did not confirm the message"

    def keep_refused(
        self, message: bytes, issue: Issue, header: MshHeader | None, location: str
    ) -> Coroutine[Any, Any, str | None]:
        return self._keep(message, len(message), issue, header, location)

    answer = staticmethod(answer)  # framed, or b"" when MSH-15 asks for none

    def _on_broken(self, item: Broken) -> None:
        metrics.BROKEN.inc()
        self._enqueue(self._refuse(item, msh_or_none(item.head)))

    def _abandon(self, fault: Fault) -> None:
        """Give up the frame in progress (too large, too slow): keep what it held on
        carelog.rejected, answer it when its MSH can be read, and close the connection."""
        item = self.decoder.abandon(fault)
        metrics.BROKEN.inc()
        header = msh_or_none(item.head)
        log.warning(
            "mllp frame given up: closing",
            extra={"conn": self.id, "peer": self.peer, "reason": fault.name, "size": item.size},
        )
        self._enqueue(self._refuse(item, header, ack=header is not None))
        self._close_after_replies()

    def _close_after_replies(self) -> None:
        """Take no more input from this sender (what comes is dropped); once the replies it
        is owed are written, end our side of the stream and close (see LINGER_SECONDS)."""
        self.closing = True
        if self.frame_timer is not None:
            self.frame_timer.cancel()
            self.frame_timer = None
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False  # read on, to drop: unread bytes would reset
            self.transport.resume_reading()
        self._end_when_answered()

    def _end_when_answered(self) -> None:
        transport = self.transport
        if self.pending or transport is None or transport.is_closing() or self.linger:
            return
        if transport.can_write_eof():  # TCP: FIN now, close after the linger
            transport.write_eof()
            self.linger = self.server.loop.call_later(LINGER_SECONDS, transport.close)
        else:  # TLS cannot half-close
            transport.close()

    def _refuse(
        self, item: Broken, header: MshHeader | None, ack: bool = True
    ) -> Coroutine[Any, Any, Answer[bytes]]:
        if item.fault is Fault.too_slow:
            limit_s = self.server.frame_timeout
            reason = (
                f"MLLP frame not finished within {limit_s:g} s "
                "(CARELOG_MLLP_FRAME_TIMEOUT_SECONDS): the connection was closed; only its "
                "first bytes are kept"
            )
            issue, error = Issue(reason, code="timeout"), "application_error"
        elif item.fault is Fault.too_large:
            limit = self.server.settings.mllp.max_message_bytes
            reason = (
                f"message of {item.size} bytes is larger than the limit of {limit} bytes "
                "(CARELOG_MLLP_MAX_MESSAGE_BYTES); only its first bytes are kept"
            )
            issue, error = Issue(reason, code="too-long"), "application_error"
        else:
            reason = f"MLLP framing: {item.fault.value}"
            issue, error = Issue(reason, code="structure"), "segment_sequence"
        keep = self._keep(item.head, item.size, issue, header, "", item.fault)
        if not ack:
            return _unanswered(keep)
        return refuse(self, item.head, issue, header, error, "", keep)

    async def _keep(
        self,
        original: bytes,
        size: int,
        issue: Issue,
        header: MshHeader | None,
        location: str,
        fault: Fault | None = None,
    ) -> str | None:
        """Keep refused bytes on carelog.rejected: None once kept, else the AE text."""
        sender = sender_of(header, self.peer)
        reason = fault.name if fault else f"bad_header_{location or 'MSH'}"
        headers = {**self.headers, "original.size": str(size)}
        if size > len(original):
            headers["original.truncated"] = "true"
        log.warning(
            "mllp input refused",
            extra={
                "conn": self.id,
                "peer": self.peer,
                "sender": sender,
                "reason": reason,
                "size": size,
                "control_id": header.control_id if header else None,
            },
        )
        try:
            await self.ingestor.reject(
                original,
                [issue],
                format=Format.hl7v2.value,
                content_type=HL7_CONTENT_TYPE,
                sender=sender,
                correlation_id=f"mllp-{self.id}",
                key=sender,
                headers=headers,
            )
        except DeliveryFailed as exc:
            log.error(
                "mllp refusal not recorded: Kafka did not confirm",
                extra={"conn": self.id, "reason": reason, "error": str(exc)},
            )
            return f"not recorded, retry later: the log did not confirm ({issue.diagnostics})"
        metrics.REFUSED.labels(reason).inc()
        return None

    # -- ordered replies --------------------------------------------------------------------

    def _enqueue(self, work: Coroutine[Any, Any, Answer[bytes]]) -> None:
        """Owe a reply computed by a coroutine (the refusals: rare, so a task each)."""
        reply = Reply()
        self.pending.append(reply)
        self._settle_later(reply, work)

    def _settle_later(self, reply: Reply, work: Coroutine[Any, Any, Answer[bytes]]) -> None:
        task = self.server.loop.create_task(work)
        self.server.background.add(task)

        def settle(task: asyncio.Task[Answer[bytes]]) -> None:
            self.server.background.discard(task)
            try:
                reply.data = task.result().ack
            except Exception:  # a bug, not a sender's fault: answer AE, keep serving
                log.exception("mllp message handling failed", extra={"conn": self.id})
                reply.data = answer(None, AckCode.error, "internal error")
            self._flush()

        task.add_done_callback(settle)

    def _flush(self) -> None:
        """Write the ACKs whose turn has come: those at the head of the queue that are known."""
        pending = self.pending
        out: list[bytes] = []
        now = time.perf_counter()
        while pending and (data := pending[0].data) is not None:
            reply = pending.popleft()
            if data:  # b"": the sender asked for no ACK of this one (MSH-15)
                out.append(data)
                metrics.ACK_SECONDS.observe(now - reply.started)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if out:
            transport.write(b"".join(out))
            self.last_active = self.server.loop.time()  # idle means no traffic either way
        if self.eof and not pending:
            transport.close()
            return
        if self.closing:
            self._end_when_answered()
            return
        self._maybe_resume_reading()

    def _maybe_resume_reading(self) -> None:
        if (
            self.reading_paused
            and not self.closing
            and not self.writing_paused
            and len(self.pending) < MAX_IN_FLIGHT // 2
            and self.transport is not None
        ):
            self.reading_paused = False
            self.transport.resume_reading()

    # -- idle timeout -----------------------------------------------------------------------

    def _arm_idle_timer(self, delay: float) -> None:
        if delay > 0:
            self.idle_timer = self.server.loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        timeout = self.server.idle_timeout
        quiet = self.server.loop.time() - self.last_active
        if self.pending or quiet < timeout:  # busy, or heard from since the timer was set
            self._arm_idle_timer(max(timeout - quiet, 0.05) if not self.pending else timeout)
            return
        log.info(
            "mllp connection idle: closing",
            extra={"conn": self.id, "peer": self.peer, "idle_seconds": round(quiet, 1)},
        )
        if self.transport is not None:
            self.transport.close()

    # -- frame deadline (slowloris) ---------------------------------------------------------

    def _arm_frame_timer(self, delay: float) -> None:
        if delay > 0 and self.frame_timer is None:
            self.frame_timer = self.server.loop.call_later(delay, self._check_frame)

    def _check_frame(self) -> None:
        """A frame must end within the frame timeout of its start, however it trickles in."""
        self.frame_timer = None
        if self.closing or self.frame_started is None or not self.decoder.open:
            return
        timeout = self.server.frame_timeout
        now = self.server.loop.time()
        if self.reading_paused:  # we stopped reading (back-pressure), not the sender
            self.frame_started = now
        taken = now - self.frame_started
        if taken < timeout:
            self._arm_frame_timer(max(timeout - taken, 0.05))
            return
        self._abandon(Fault.too_slow)


class MllpServer:
    """Listens for MLLP connections; `start()` binds, `close()` drains and stops."""

    loop: asyncio.AbstractEventLoop  # set by start()
    bridge: LoopBridge

    def __init__(
        self,
        ingestor: Ingestor,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 2575,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ingestor = ingestor
        self.settings = settings
        self.host, self.port = host, port
        self.ssl_context = ssl_context
        self.idle_timeout = settings.mllp.idle_timeout_seconds
        self.frame_timeout = settings.mllp.frame_timeout_seconds
        self.max_connections = settings.mllp.max_connections
        self.connections: set[MllpConnection] = set()
        self.background: set[asyncio.Task[Answer[bytes]]] = set()  # refusals being recorded
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.bridge = LoopBridge(self.loop)
        self._server = await self.loop.create_server(
            lambda: MllpConnection(self),
            self.host,
            self.port,
            ssl=self.ssl_context,
            reuse_address=True,
            backlog=1024,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "mllp listening", extra={"address": self.address, "tls": self.ssl_context is not None}
        )

    def track(self, work: Coroutine[Any, Any, Answer[bytes]]) -> None:
        task = self.loop.create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self, timeout: float = 30.0) -> None:
        """Stop accepting, let owed ACKs go out, then close every connection."""
        if self._server is not None:
            self._server.close()
        deadline = self.loop.time() + timeout
        while self.loop.time() < deadline and (
            self.background or any(c.pending for c in self.connections)
        ):
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.close()
        if self._server is not None:
            await self._server.wait_closed()
