"""A real `carelog notifier` process, a real HTTP receiver, and Subscription builders."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson

from projections.notifier.control_auth import control_credential
from streams.settings import PROJECT_ROOT, Settings
from tests.kafka_fixture import free_port

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.05)


class NotifierProcess:
    """`carelog notifier` on free ports with its own state folder; start, SIGKILL, restart."""

    def __init__(self, folder: Path, **settings: str) -> None:
        self.folder = folder
        self.ws_port, self.control_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "CARELOG_NOTIFIER_DIR": str(folder / "state"),
            "CARELOG_NOTIFIER_PORT": str(self.ws_port),
            "CARELOG_NOTIFIER_CONTROL_PORT": str(self.control_port),
            "CARELOG_NOTIFIER_WS_URL": f"ws://127.0.0.1:{self.ws_port}/ws",
            "CARELOG_NOTIFIER_METRICS_PORT": "0",
            "CARELOG_NOTIFIER_BACKOFF_MIN_SECONDS": "0.1",
            "CARELOG_NOTIFIER_BACKOFF_MAX_SECONDS": "0.5",
            "CARELOG_NOTIFIER_FHIR_BASE": "http://carelog.test/fhir",
            **settings,
        }
        self.control = f"http://127.0.0.1:{self.control_port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> None:
        log = (self.folder / "notifier.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "infra.cli", "notifier"], cwd=PROJECT_ROOT, env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"notifier exited: {(self.folder / 'notifier.log').read_text()}"
                )
            try:
                return self.ask("GET", "status/none", timeout=1).status_code == 404
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout, "the notifier's control port")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def ask(self, method: str, path: str, timeout: float = 5, **headers: str) -> httpx.Response:
        """A call to the control port, with the gateway's credential unless `headers` say."""
        # This process's settings: the notifier runs with the same master key.
        sent = {"Authorization": control_credential(Settings()), **headers}
        return httpx.request(method, f"{self.control}/{path}", headers=sent, timeout=timeout)

    def status(self, sub_id: str) -> dict[str, Any]:
        """{parameter name: value} of the $status answer ({} while it is not known)."""
        answer = self.ask("GET", f"status/{sub_id}")
        if answer.status_code == 404:
            return {}
        bundle = answer.json()
        params = bundle["entry"][0]["resource"]["parameter"]
        return {p["name"]: next((v for k, v in p.items() if k.startswith("value")), None)
                for p in params}  # fmt: skip


class Receiver:
    """An HTTP server recording every POSTed notification bundle, by path; can go down."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.received: list[tuple[str, dict[str, Any], dict[str, str], float]] = []
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, orjson.loads(body), dict(self.headers), time.time()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bundles(self, path: str, kind: str = "event-notification") -> list[dict[str, Any]]:
        return [
            b for p, b, _, _ in list(self.received) if p == path and notification_type(b) == kind
        ]

    def headers(self, path: str) -> list[dict[str, str]]:
        return [h for p, _, h, _ in list(self.received) if p == path]


def status_params(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return list(bundle["entry"][0]["resource"]["parameter"])


def notification_type(bundle: dict[str, Any]) -> str:
    return next(p["valueCode"] for p in status_params(bundle) if p["name"] == "type")


def event_numbers(bundle: dict[str, Any]) -> list[int]:
    return [
        int(part["valueString"])
        for p in status_params(bundle) if p["name"] == "notification-event"
        for part in p["part"] if part["name"] == "event-number"
    ]  # fmt: skip


def subscription(
    sub_id: str,
    criteria: str,
    *,
    channel: str = "rest-hook",
    endpoint: str | None = None,
    content: str | None = "full-resource",
    heartbeat: int | None = None,
    headers: list[str] | None = None,
    status: str = "requested",
) -> dict[str, Any]:
    chan: dict[str, Any] = {"type": channel}
    if endpoint is not None:
        chan["endpoint"] = endpoint
    if content is not None:
        chan["payload"] = "application/fhir+json"
        chan["_payload"] = {"extension": [{"url": BACKPORT + "backport-payload-content",
                                           "valueCode": content}]}  # fmt: skip
    if heartbeat is not None:
        chan["extension"] = [{"url": BACKPORT + "backport-heartbeat-period",
                              "valueUnsignedInt": heartbeat}]  # fmt: skip
    if headers:
        chan["header"] = headers
    return {"resourceType": "Subscription", "id": sub_id, "status": status,
            "reason": "test", "criteria": criteria, "channel": chan}  # fmt: skip


def observation(oid: str, code: str, patient: str, value: int = 1) -> dict[str, Any]:
    return {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient}"},
        "valueQuantity": {"value": value, "unit": "mmHg"},
    }  # fmt: skip
