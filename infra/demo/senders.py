"""Send the plan: HTTP to the gateway, HL7 v2 over MLLP, one progress bar per stream.

Phases go one after the other; within a phase every stream sends at once. An MLLP stream
is one connection sending in order (so one patient's ADT events stay in order); an HTTP
stream keeps a few requests in flight. Like any good sender, the demo retries what carelog
asks it to retry (HTTP 503, ACK AE) and counts what it refused (4xx, ACK AR).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.mllp.framing import END, frame
from infra.demo.outgoing import Outgoing
from infra.demo.plan import Plan

HTTP_IN_FLIGHT = 4
ATTEMPTS = 4  # a 503 / AE is retried this many times in all, with a growing pause


class DemoError(Exception):
    """The demo cannot go on; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Target:
    gateway: str  # base URL, e.g. http://127.0.0.1:8080
    mllp_host: str
    mllp_port: int
    token: str


@dataclass(frozen=True, slots=True)
class Result:
    message: Outgoing
    outcome: Literal["accepted", "refused", "failed"]
    detail: str  # HTTP status or ACK code, and carelog's words when not accepted


async def check_reachable(target: Target) -> None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            await client.get(f"{target.gateway}/healthz")
    except httpx.HTTPError as exc:
        raise DemoError(
            f"the gateway at {target.gateway} does not answer ({exc}); start carelog with "
            "`carelog run` (or pass --gateway URL)"
        ) from None
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(target.mllp_host, target.mllp_port), 5
        )
        writer.close()
    except (OSError, TimeoutError) as exc:
        raise DemoError(
            f"the MLLP listener at {target.mllp_host}:{target.mllp_port} does not answer "
            f"({exc}); start carelog with `carelog run` (or pass --mllp HOST:PORT)"
        ) from None


async def send_plan(plan: Plan, target: Target, progress: Progress) -> list[Result]:
    totals = Counter(m.stream for m in plan.messages)
    tasks = {s: progress.add_task(s, total=n) for s, n in totals.items()}
    results: list[Result] = []
    headers = {"Authorization": f"Bearer {target.token}"}
    async with httpx.AsyncClient(base_url=target.gateway, headers=headers, timeout=60) as http:
        for phase in plan.phases:
            # A stream may mix channels (the bad messages do): one sender per channel.
            streams: dict[tuple[str, str], list[Outgoing]] = {}
            for message in phase.messages:
                streams.setdefault((message.stream, message.channel), []).append(message)

            async def run(stream: str, messages: list[Outgoing]) -> list[Result]:
                def done() -> None:
                    progress.advance(tasks[stream])

                if messages[0].channel == "mllp":
                    return await _send_mllp(target, messages, done)
                return await _send_http(http, plan.seed, messages, done)

            sent = await asyncio.gather(*(run(s, m) for (s, _), m in streams.items()))
            for found in sent:
                results.extend(found)
    return results


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )


async def _send_http(
    http: httpx.AsyncClient, seed: int, messages: list[Outgoing], done: Callable[[], None]
) -> list[Result]:
    gate = asyncio.Semaphore(HTTP_IN_FLIGHT)

    async def one(message: Outgoing) -> Result:
        async with gate:
            result = await _post(http, seed, message)
        done()
        return result

    return list(await asyncio.gather(*(one(m) for m in messages)))


async def _post(http: httpx.AsyncClient, seed: int, message: Outgoing) -> Result:
    headers = {"Content-Type": message.content_type, **dict(message.headers)}
    headers["X-Request-ID"] = f"demo-{seed}-{uuid.uuid4().hex[:16]}"
    detail = ""
    for attempt in range(ATTEMPTS):
        try:
            answer = await http.request(
                message.method, message.path, content=message.body, headers=headers
            )
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}"
        else:
            if answer.status_code < 400:
                return Result(message, "accepted", str(answer.status_code))
            detail = f"{answer.status_code} {_said(answer)}"
            if answer.status_code not in (429, 503):
                return Result(message, "refused", detail)
        await asyncio.sleep(0.5 * 2**attempt)
    return Result(message, "failed", detail)


def _said(answer: httpx.Response) -> str:
    """carelog's reason in an answer: an OperationOutcome's diagnostics, an ACK's ERR, ..."""
    text = answer.text
    if "OperationOutcome" in text:
        try:
            issues = answer.json().get("issue", [])
            return "; ".join(str(i.get("diagnostics", "")) for i in issues)[:300]
        except ValueError:
            pass
    return " ".join(text.replace("\r", " ").split())[:300]


async def _send_mllp(
    target: Target, messages: list[Outgoing], done: Callable[[], None]
) -> list[Result]:
    results: list[Result] = []
    reader, writer = await asyncio.open_connection(target.mllp_host, target.mllp_port)
    try:
        for message in messages:
            code, text = "", ""
            for attempt in range(ATTEMPTS):
                writer.write(frame(message.body))
                await writer.drain()
                ack = await asyncio.wait_for(reader.readuntil(END), 60)
                code, text = _msa(ack)
                if code not in ("AE", "CE"):
                    break
                await asyncio.sleep(0.5 * 2**attempt)
            outcome: Literal["accepted", "refused", "failed"] = (
                "accepted"
                if code in ("AA", "CA")
                else "refused"
                if code in ("AR", "CR")
                else "failed"
            )
            results.append(Result(message, outcome, f"ACK {code} {text}".strip()))
            done()
    finally:
        writer.close()
    return results


def _msa(ack: bytes) -> tuple[str, str]:
    """MSA-1 (acknowledgment code) and MSA-3 or ERR text of an ACK."""
    segments = ack.strip(b"\x0b\x1c\r").decode("latin-1").split("\r")
    msa = next((s.split("|") for s in segments if s.startswith("MSA")), ["MSA", ""])
    err = next((s for s in segments if s.startswith("ERR")), "")
    return msa[1] if len(msa) > 1 else "", (msa[3] if len(msa) > 3 else "") or err
