"""Rejections re-driven, lineage, and replay into a shadow, on the real broker with a real
worker whose mapping the tests switch (tests/infra/mapping_switch.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from infra.cli import main
from infra.history.redrive import REDRIVE_HEADER
from infra.replay.names import Shadow
from infra.replay.promote import REPLAY_HEADER
from processors import translators as translate_module
from projections.fhir_store.runner import consume
from projections.fhir_store.store import FhirStore
from schemas.events import Channel, Format, InboundMessage, ResourceChanged
from streams.admin import admin_client, existing_topics
from streams.event_codec import decode_event
from streams.lag import committed_offsets, count_pending, group_lag, partitions_of, watermarks
from streams.log_scan import read_log
from streams.settings import PROJECT_ROOT, Settings
from streams.topics import AUDIT, FHIR_CHANGES, FHIR_TRANSLATED, REJECTED, inbound_topic
from tests.infra.mapping_switch import BIRTH_DATE, MARK, switched
from tests.processors.test_worker_pipeline import fhir_put, publish
from tests.processors.worker_harness import Worker, wait_for

pytestmark = pytest.mark.kafka
WORKER_INPUTS = [*(inbound_topic(f) for f in Format), FHIR_TRANSLATED]


class SwitchWorker(Worker):
    def __init__(self, var_dir: Path, switches: Path) -> None:
        super().__init__(var_dir)
        self.switches = switches

    def start(self) -> None:
        self.var_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "CARELOG_VAR_DIR": str(self.var_dir)}
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.infra.mapping_switch", str(self.switches)],
                cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip


class Env:
    """The module's worker, switches, live store and the time it began."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.settings = settings
        self.switches = tmp / "switches"
        self.switches.mkdir()
        (self.switches / "broken").touch()
        self.worker = SwitchWorker(tmp / "worker", self.switches)
        self.store = tmp / "live.sqlite"
        self.began = datetime.now(UTC) - timedelta(seconds=1)
        self.pid = str(uuid.uuid4())
        self.rejected_id = ""

    def caught_up(self) -> bool:
        """The worker has handled everything on its inputs."""
        lags = group_lag(
            self.settings, admin_client(self.settings), self.settings.worker.app_id,
            WORKER_INPUTS,
        )  # fmt: skip
        return sum(p.lag for p in count_pending(self.settings, lags)) == 0

    def fold(self) -> None:
        """Bring the live store up to the end of the log."""
        with FhirStore.open(self.store) as store:
            consume(store, self.settings, caught_up=True)


@pytest.fixture(scope="module")
def env(kafka_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(kafka_settings, tmp_path_factory.mktemp("history"))
    e.worker.start()
    yield e
    e.worker.stop()


def carelog(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().out


def patient_put(pid: str) -> InboundMessage:
    body = {"resourceType": "Patient", "id": pid, "active": True,
            "identifier": [{"system": "urn:test", "value": f"{MARK.decode()}-{pid}"}]}  # fmt: skip
    return InboundMessage.received(
        orjson.dumps(body), channel=Channel.http, format=Format.fhir,
        content_type="application/fhir+json", sender="history-test",
        correlation_id=f"corr-{pid}",
        headers={"http.method": "PUT", "http.path": f"/fhir/Patient/{pid}"},
    )  # fmt: skip


def changes_of(settings: Settings, key: str, since: datetime) -> list[ResourceChanged]:
    found = []
    for record in read_log(settings, [FHIR_CHANGES], since_ms=int(since.timestamp() * 1000)):
        if record.key == key.encode():
            event = decode_event(record.value)
            assert isinstance(event, ResourceChanged)
            found.append(event)
    return found


def test_a_mapping_rejection_is_listed_shown_and_redriven_once(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(env.settings, [patient_put(env.pid)])
    since = env.began.isoformat()
    rows: list[dict[str, str]] = []

    def listed() -> bool:
        _, out = carelog(capsys, "rejected", "list", "--since", since, "--reason",
                         "test mapping bug", "--sender", "history-test", "--json")  # fmt: skip
        rows[:] = [orjson.loads(line) for line in out.splitlines()]
        return bool(rows)

    wait_for(listed, 90, env.worker)
    assert len(rows) == 1 and rows[0]["stage"] == "translate"
    env.rejected_id = rows[0]["id"]
    code, table = carelog(capsys, "rejected", "list", "--since", since, "--stage", "translate")
    assert code == 0 and env.rejected_id in table

    code, text = carelog(capsys, "rejected", "show", env.rejected_id)
    assert code == 0 and f'"value":"{MARK.decode()}-{env.pid}"' in text  # the bytes, as text
    code, out = carelog(capsys, "rejected", "show", env.rejected_id, "--json")
    shown = orjson.loads(out)
    assert code == 0
    assert f"{MARK.decode()}-{env.pid}" in shown["original_bytes"]
    assert shown["sender"] == "history-test" and shown["correlation_id"] == f"corr-{env.pid}"
    assert shown["original"].startswith(inbound_topic(Format.fhir))
    assert shown["operation_outcome"]["issue"][0]["diagnostics"].startswith("test mapping bug")

    (env.switches / "broken").unlink()  # the mapping is fixed
    code, first = carelog(capsys, "rejected", "redrive", env.rejected_id)
    assert code == 0 and "re-sent as" in first
    code, second = carelog(capsys, "rejected", "redrive", env.rejected_id)
    assert code == 0 and "re-driven before" in second and "re-sent" not in second
    code, forced = carelog(capsys, "rejected", "redrive", env.rejected_id, "--again")
    assert code == 0 and "re-sent as" in forced  # even sent twice, it must make one version

    key = f"Patient/{env.pid}"
    wait_for(lambda: bool(changes_of(env.settings, key, env.began)), 90, env.worker)
    wait_for(env.caught_up, 90, env.worker)
    assert [c.version for c in changes_of(env.settings, key, env.began)] == [1]
    resent = [
        r for r in read_log(env.settings, [inbound_topic(Format.fhir)],
                            since_ms=int(env.began.timestamp() * 1000))
        if r.headers.get(REDRIVE_HEADER) == env.rejected_id.encode()
    ]  # fmt: skip
    assert len(resent) == 2
    env.fold()
    with FhirStore.open(env.store, readonly=True) as store:
        found = store.read("Patient", env.pid)
        assert found is not None and found.version == 1


def test_a_version_stage_rejection_redrives_the_inbound_message_behind_it(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    pid = str(uuid.uuid4())
    put = fhir_put({"resourceType": "Patient", "id": pid, "active": True}, if_match=7)
    publish(env.settings, [put])  # If-Match 7 on a patient that does not exist: refused
    since = env.began.isoformat()
    rows: list[dict[str, str]] = []

    def listed() -> bool:
        _, out = carelog(capsys, "rejected", "list", "--since", since, "--stage", "version",
                         "--reason", pid, "--json")  # fmt: skip
        rows[:] = [orjson.loads(line) for line in out.splitlines()]
        return bool(rows)

    wait_for(listed, 60, env.worker)
    code, out = carelog(capsys, "rejected", "show", rows[0]["id"], "--json")
    assert code == 0 and orjson.loads(out)["held"] == "ResourceTranslated"
    code, out = carelog(capsys, "rejected", "redrive", "--stage", "version", "--reason", pid,
                        "--since", since)  # fmt: skip
    assert code == 0 and "re-sent as carelog.inbound.fhir[" in out
    [resent] = [
        r for r in read_log(env.settings, [inbound_topic(Format.fhir)],
                            since_ms=int(env.began.timestamp() * 1000))
        if r.headers.get(REDRIVE_HEADER) == rows[0]["id"].encode()
    ]  # fmt: skip
    event = decode_event(resent.value)
    assert isinstance(event, InboundMessage) and event.payload == put.payload
    assert event.headers == put.headers and event.event_id != put.event_id


def test_lineage_leads_from_a_resource_to_its_inbound_bytes(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert env.rejected_id, "needs the re-driven patient of the test before"
    ref = f"Patient/{env.pid}/_history/1"
    code, out = carelog(capsys, "lineage", ref, "--store", str(env.store), "--json")
    chain = orjson.loads(out)
    assert code == 0
    [change] = changes_of(env.settings, f"Patient/{env.pid}", env.began)
    at = f"{change.inbound_topic}[{change.inbound_partition}]@{change.inbound_offset}"
    assert chain["inbound"]["at"] == at
    assert chain["inbound"]["redrive_of"] == env.rejected_id
    assert chain["change"]["at"].startswith(f"{FHIR_CHANGES}[")
    assert chain["change"]["event_id"] == change.event_id
    assert chain["translated"]["at"].startswith(f"{FHIR_TRANSLATED}[")
    assert orjson.loads(chain["payload"])["id"] == env.pid
    code, text = carelog(capsys, "lineage", f"Patient/{env.pid}", "--store", str(env.store))
    assert code == 0 and at in text and f"{MARK.decode()}-{env.pid}" in text
    code, _ = carelog(capsys, "lineage", "Patient", "--store", str(env.store))
    assert code == 1  # not a reference: said so, nothing scanned


def _live_positions(settings: Settings) -> dict[str, object]:
    admin = admin_client(settings)
    topics = [*WORKER_INPUTS, FHIR_CHANGES, REJECTED, AUDIT]
    parts = partitions_of(admin, topics)
    return {
        "ends": watermarks(admin, parts),
        "group": committed_offsets(settings, settings.worker.app_id, parts),
    }


def test_replay_into_a_shadow_diffs_a_mapping_change_and_promotes_it_by_redrive(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert env.rejected_id, "needs the re-driven patient of the first test"
    other = str(uuid.uuid4())  # a second patient, translated by the same mapping
    publish(env.settings, [patient_put(other)])
    wait_for(lambda: bool(changes_of(env.settings, f"Patient/{other}", env.began)), 90)
    wait_for(env.caught_up, 90, env.worker)
    env.fold()
    before = _live_positions(env.settings)
    store_before = env.store.read_bytes()

    (env.switches / "v2").touch()  # the new mapping, in this process and in the worker
    monkeypatch.setattr(
        translate_module, "_translated", switched(translate_module._translated, env.switches)
    )
    name = f"t{uuid.uuid4().hex[:8]}"
    shadow = Shadow.named(name, env.settings)
    code, out = carelog(capsys, "replay", "--from", env.began.isoformat(), "--into", name,
                        "--store", str(env.store))  # fmt: skip
    assert code == 0, out
    try:
        assert _live_positions(env.settings) == before  # live topics and group untouched
        assert env.store.read_bytes() == store_before  # and the live store too
        code, out = carelog(capsys, "replay", "diff", name, "--store", str(env.store), "--json")
        diff = orjson.loads(out)
        assert code == 0
        assert diff["Patient"]["changed"] == 2 and diff["Patient"]["added"] == 0
        assert diff["Patient"]["removed"] == 0
        samples = {s["resource"]: s["fields"] for s in diff["Patient"]["samples"]}
        assert samples[f"Patient/{other}"] == [
            {"path": "birthDate", "old": None, "new": BIRTH_DATE}
        ]
        code, text = carelog(capsys, "replay", "diff", name, "--store", str(env.store))
        assert f'birthDate: null -> "{BIRTH_DATE}"' in text

        code, out = carelog(capsys, "replay", "promote", name, "--store", str(env.store))
        assert code == 0 and "re-drove" in out, out
        code, again = carelog(capsys, "replay", "promote", name, "--store", str(env.store))
        assert "promoted before" in again
        key = f"Patient/{other}"
        wait_for(lambda: len(changes_of(env.settings, key, env.began)) >= 2, 90, env.worker)
        wait_for(env.caught_up, 90, env.worker)
        versions = changes_of(env.settings, key, env.began)
        assert [c.version for c in versions] == [1, 2]
        assert orjson.loads(versions[1].resource or "")["birthDate"] == BIRTH_DATE
        marked = [
            r for r in read_log(env.settings, [inbound_topic(Format.fhir)],
                                since_ms=int(env.began.timestamp() * 1000))
            if r.headers.get(REPLAY_HEADER) == name.encode()
        ]  # fmt: skip
        assert marked  # the promotion is on the log
        env.fold()
        code, out = carelog(capsys, "replay", "diff", name, "--store", str(env.store), "--json")
        assert orjson.loads(out)["Patient"]["changed"] == 0  # live now matches the shadow
    finally:
        code, out = carelog(capsys, "replay", "drop", name)
    assert code == 0 and shadow.changes in out
    assert not shadow.store.exists() and not shadow.manifest.exists()
    assert not [t for t in existing_topics(admin_client(env.settings)) if name in t]
