"""The carelog command against the real broker: publish a file, read it back byte for byte."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from fastavro import parse_schema, schemaless_reader

from processors.inbound_owner import inbound_owner
from schemas.events import Format
from streams.event_codec import decode_event
from streams.privacy.envelope import keystore
from streams.settings import PROJECT_ROOT, Settings

AVRO = PROJECT_ROOT / "schemas" / "avro"


def carelog(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.cli", *args],
        cwd=PROJECT_ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def read_with_avsc_only(data: bytes) -> dict[str, object]:
    """What any Avro reader does with the .avsc files: find the writer by fingerprint, decode."""
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    assert data[:2] == b"\xc3\x01"
    for path in AVRO.glob("*.avsc"):
        schema = parse_schema(json.loads(path.read_text()), named_schemas={})
        crc = int(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"), 16)
        if crc.to_bytes(8, "little") == data[2:10]:
            record = schemaless_reader(BytesIO(data[10:]), schema, None)
            assert isinstance(record, dict)
            return record
    raise AssertionError("no .avsc matches the fingerprint")


def fetch(settings: Settings, topic: str, partition: int, offset: int) -> bytes:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": "test-cli"})
    consumer.assign([TopicPartition(topic, partition, offset)])
    try:
        msg = consumer.poll(30)
        assert msg is not None and msg.error() is None
        return bytes(msg.value())
    finally:
        consumer.close()


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("fmt", "name"),
    [
        ("hl7v2", "hl7v2/adt_a01_latin1_zseg_v2.6.hl7"),
        ("device", "device/bedside_monitor_batch.json"),
    ],
)
def test_published_file_reads_back_byte_for_byte(
    kafka_settings: Settings, corpus: Path, fmt: str, name: str
) -> None:
    path = corpus / name
    done = carelog("publish", "--format", fmt, str(path))
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"(\S+) (\S+)\[(\d+)\]@(\d+)\n", done.stdout)
    assert match, done.stdout
    event_id, topic, partition, offset = match.groups()
    assert topic == f"carelog.inbound.{fmt}"

    raw = fetch(kafka_settings, topic, int(partition), int(offset))
    record = read_with_avsc_only(raw)
    assert record["event_id"] == event_id
    # The payload is PHI: sealed with its data key (streams/privacy/), readable through carelog only.
    assert record["payload"] is None and record["key_id"] and record["sealed"]
    assert path.read_bytes()[:40] not in raw
    assert decode_event(raw).payload == path.read_bytes()  # type: ignore[union-attr]
    assert record["channel"] == "file" and record["format"] == fmt

    tail = carelog("tail", topic, "--from-beginning", "--idle", "3")
    lines = [json.loads(line) for line in tail.stdout.split("\n") if line]
    mine = [line for line in lines if line.get("event_id") == event_id]
    assert len(mine) == 1
    if fmt == "hl7v2":  # ISO-8859-1 bytes are not UTF-8: shown as base64, never raw
        assert "base64" in mine[0]["payload"]
    else:
        assert mine[0]["payload"] == path.read_text()


@pytest.mark.kafka
def test_topics_list_shows_the_catalogue(kafka_settings: Settings) -> None:
    done = carelog("topics", "list")
    assert done.returncode == 0, done.stderr
    assert "carelog.fhir.changes" in done.stdout and "retention.ms=-1" in done.stdout


@pytest.mark.kafka
def test_with_a_configured_cluster_kafka_up_starts_nothing(kafka_settings: Settings) -> None:
    done = carelog("kafka", "up")
    assert done.returncode == 0
    assert f"CARELOG_KAFKA_BOOTSTRAP={kafka_settings.kafka.bootstrap}" in done.stdout


@pytest.mark.kafka
def test_schemas_are_published_keyed_by_fingerprint(kafka_settings: Settings) -> None:
    done = carelog("run", "--infra-only")
    assert done.returncode == 0, done.stderr
    tail = carelog("tail", "carelog.schemas", "--from-beginning", "--idle", "3")
    keys = {json.loads(line)["key"] for line in tail.stdout.split("\n") if line}
    from schemas.catalogue import default_catalogue

    assert keys >= {v.fingerprint_hex for v in default_catalogue().all()}


@pytest.mark.kafka
def test_run_warns_when_mllp_listens_beyond_loopback_without_tls(
    kafka_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from api.mllp.tls import plain_tcp_warning
    from infra.commands import cmd_run
    from infra.supervisor import Service, Supervisor

    supervised: list[Service] = []

    def run_forever(self: Supervisor, on_tick: object = None) -> None:  # start nothing
        supervised.extend(self.services)

    monkeypatch.setattr(Supervisor, "run_forever", run_forever)
    exposed = kafka_settings.amended(mllp={"host": "0.0.0.0", "port": 12575}, var_dir=tmp_path)
    assert cmd_run(argparse.Namespace(infra_only=False), exposed) == 0
    err = capsys.readouterr().err
    assert "warning: MLLP listens on 0.0.0.0:12575 without TLS" in err
    assert "CARELOG_MLLP_TLS_CERT" in err and "CARELOG_MLLP_TLS_CLIENT_CA" in err
    [mllp] = [s for s in supervised if s.name == "mllp"]
    assert mllp.url == "mllp://0.0.0.0:12575"
    # Two workers by default (CARELOG_WORKER_PROCESSES), told apart by member id and port.
    workers = [s for s in supervised if s.name.startswith("worker")]
    assert [w.name for w in workers] == ["worker", "worker-2"]
    ids = {w.env["CARELOG_WORKER_INSTANCE_ID"] for w in workers}
    ports = {w.env["CARELOG_WORKER_METRICS_PORT"] for w in workers}
    port = exposed.worker.metrics_port
    assert len(ids) == 2 and ports == ({str(port), str(port + 10)} if port else {"0"})

    for quiet in ({"host": "127.0.0.1"}, {"host": "::1"}, {"host": "localhost"},
                  {"tls_cert": tmp_path / "cert.pem"}):  # fmt: skip
        assert plain_tcp_warning(exposed.amended(mllp=quiet)) is None
    assert cmd_run(argparse.Namespace(infra_only=False), kafka_settings) == 0  # loopback
    assert "MLLP listens" not in capsys.readouterr().err


@pytest.mark.kafka
def test_a_published_message_of_a_returning_patient_is_sealed_with_the_patients_key(
    kafka_settings: Settings, corpus: Path
) -> None:
    """As the gateway seals it: a patient who has a key on the log (made here as the worker
    makes it) gets no key record per published message, and erasing the patient erases it."""
    path = corpus / "hl7v2/oru_r01_cbc_v2.5.1.hl7"
    owner = inbound_owner(Format.hl7v2, path.read_bytes())
    store = keystore()
    assert owner is not None and store is not None
    key_id, _ = store.key_for(f"patient:{owner}")
    done = carelog("publish", "--format", "hl7v2", str(path))
    assert done.returncode == 0, done.stderr
    match = re.fullmatch(r"(\S+) (\S+)\[(\d+)\]@(\d+)\n", done.stdout)
    assert match, done.stdout
    _, topic, partition, offset = match.groups()
    record = read_with_avsc_only(fetch(kafka_settings, topic, int(partition), int(offset)))
    assert record["key_id"] == key_id and record["payload"] is None
