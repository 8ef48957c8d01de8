"""The processors end to end on the real broker with real worker processes."""

from __future__ import annotations

import uuid
from collections import defaultdict

import orjson
import pytest

from schemas.events import Channel, Format, InboundMessage, Operation, Rejected, ResourceChanged
from streams.event_codec import encode_event
from streams.producer import EventProducer, Outgoing
from streams.settings import Settings
from streams.topics import FHIR_CHANGES, REJECTED, inbound_topic
from tests.processors.worker_harness import SharedWorker, Worker, read_all, wait_for
from tests.streams.test_json_logs import LIBRDKAFKA, parse_log_line

pytestmark = pytest.mark.kafka


def fhir_put(resource: dict[str, object], if_match: int | None = None) -> InboundMessage:
    headers = {
        "http.method": "PUT",
        "http.path": f"/fhir/{resource['resourceType']}/{resource['id']}",
    }
    if if_match is not None:
        headers["http.if-match"] = f'W/"{if_match}"'
    return InboundMessage.received(
        orjson.dumps(resource), channel=Channel.http, format=Format.fhir,
        content_type="application/fhir+json", sender="test-app", headers=headers,
    )  # fmt: skip


def publish(settings: Settings, events: list[InboundMessage], key: str = "test-app") -> None:
    with EventProducer(settings) as producer:
        producer.send_many(Outgoing(inbound_topic(e.format), key, encode_event(e)) for e in events)


def changes_for(settings: Settings, ids: set[str]) -> dict[str, list[ResourceChanged]]:
    found: dict[str, list[ResourceChanged]] = defaultdict(list)
    for _, event in read_all(settings, FHIR_CHANGES):
        if isinstance(event, ResourceChanged) and event.resource_id in ids:
            found[event.resource_id].append(event)
    return found


@pytest.fixture(scope="module")
def worker(shared_worker: SharedWorker, tmp_path_factory: pytest.TempPathFactory) -> Worker:
    """The session's shared worker (each test uses resource ids of its own)."""
    return shared_worker.running(lambda: tmp_path_factory.mktemp("worker"))


def patient(pid: str, **extra: object) -> dict[str, object]:
    return {"resourceType": "Patient", "id": pid, "active": True, **extra}


def test_same_message_twice_emits_once_and_a_change_emits_version_2(
    kafka_settings: Settings, worker: Worker
) -> None:
    pid = str(uuid.uuid4())
    first = patient(pid, gender="female")
    publish(
        kafka_settings, [fhir_put(first), fhir_put(first), fhir_put(patient(pid, gender="male"))]
    )
    wait_for(lambda: len(changes_for(kafka_settings, {pid}).get(pid, [])) >= 2, 120, worker)
    versions = changes_for(kafka_settings, {pid})[pid]
    assert [c.version for c in versions] == [1, 2]
    assert orjson.loads(versions[1].resource or "")["gender"] == "male"
    assert all(c.operation is Operation.upsert for c in versions)


def test_poison_and_invalid_messages_are_rejected_and_do_not_block(
    kafka_settings: Settings, worker: Worker
) -> None:
    marker = uuid.uuid4().hex
    with EventProducer(kafka_settings) as producer:
        producer.send(inbound_topic(Format.fhir), f"poison-{marker}".encode(), "test-app")
    pid = str(uuid.uuid4())
    bad = fhir_put(
        {"resourceType": "Observation", "id": pid, "status": "bogus", "code": {"text": "x"}}
    )
    publish(kafka_settings, [bad, fhir_put(patient(pid))])
    wait_for(lambda: pid in changes_for(kafka_settings, {pid}), 120, worker)

    rejected = [e for _, e in read_all(kafka_settings, REJECTED) if isinstance(e, Rejected)]
    poison = [r for r in rejected if r.original == f"poison-{marker}".encode()]
    assert len(poison) == 1 and poison[0].stage == "decode" and "C3 01" in poison[0].reason
    invalid = [r for r in rejected if r.original_event_id == bad.event_id]
    assert len(invalid) == 1 and invalid[0].stage == "translate"
    assert "Observation.status" in invalid[0].operation_outcome


def test_stale_if_match_is_rejected_by_the_versioning_stage(
    kafka_settings: Settings, worker: Worker
) -> None:
    pid = str(uuid.uuid4())
    stale = fhir_put(patient(pid, gender="other"), if_match=5)
    publish(kafka_settings, [fhir_put(patient(pid)), stale])
    wait_for(
        lambda: any(isinstance(e, Rejected) and e.original_event_id == stale.event_id
                    for _, e in read_all(kafka_settings, REJECTED)), 120, worker,
    )  # fmt: skip
    assert [c.version for c in changes_for(kafka_settings, {pid})[pid]] == [1]


def adt(trigger: str, control: str, mrn: str, street: str) -> InboundMessage:
    segments = [
        f"MSH|^~\\&|EPICADT|NWH|CARELOG|CARELOG|20261107083000-0500||ADT^{trigger}^ADT_A01|{control}|P|2.5.1",
        f"EVN|{trigger}|20261107083000-0500",
        f"PID|1||{mrn}^^^NWH^MR||Haddad^Omar^Y||19880217|M|||{street}^^Madison^WI^53711^USA",
        f"PV1|1|I|4W^412^B^NWH||||1234567890^Kim^Ana^^^Dr^^^NPI|||||||||||V{mrn}^^^NWH^VN",
    ]  # fmt: skip
    return hl7_message(*segments, control=control, sender="EPICADT")


def test_hl7_a01_then_a08_gives_patient_version_2_and_a_resend_changes_nothing(
    kafka_settings: Settings, worker: Worker
) -> None:
    mrn = f"MRN{uuid.uuid4().hex[:10]}"
    a01 = adt("A01", "C1", mrn, "9 Pine Ct")
    a08 = adt("A08", "C2", mrn, "12 Oak Ave")
    publish(kafka_settings, [a01, a01, a08], key=f"NWH|{mrn}")
    versions = patient_versions(kafka_settings, worker, mrn, 2)
    assert [c.version for c in versions] == [1, 2]
    assert [c.inbound_event_id for c in versions] == [a01.event_id, a08.event_id]
    assert orjson.loads(versions[1].resource or "")["address"][0]["line"] == ["12 Oak Ave"]


def hl7_message(*segments: str, control: str, sender: str = "NWH") -> InboundMessage:
    return InboundMessage.received(
        ("\r".join(segments) + "\r").encode(), channel=Channel.mllp, format=Format.hl7v2,
        content_type="x-application/hl7-v2+er7", sender=sender, idempotency_key=control,
    )  # fmt: skip


def patient_versions(
    settings: Settings, worker: Worker, mrn: str, count: int
) -> list[ResourceChanged]:
    """The changes of the NWH patient `mrn`, once there are at least `count`."""
    from processors.ids import local_system, patient_id

    pid = patient_id(local_system("NWH"), mrn)
    wait_for(lambda: len(changes_for(settings, {pid}).get(pid, [])) >= count, 120, worker)
    return changes_for(settings, {pid})[pid]


def test_a_lab_result_does_not_wipe_the_demographics_the_adt_feed_gave(
    kafka_settings: Settings, worker: Worker
) -> None:
    mrn = f"MRN{uuid.uuid4().hex[:10]}"

    def a08(control: str, street: str) -> InboundMessage:
        return hl7_message(
            f"MSH|^~\\&|EPICADT|NWH|CARELOG|CARELOG|20261107083000-0500||ADT^A08^ADT_A01|{control}|P|2.5.1",
            "EVN|A08|20261107083000-0500",
            f"PID|1||{mrn}^^^NWH^MR||Haddad^Omar^Y||19880217|M|||{street}^^Madison^WI^53711^USA^H"
            "||^PRN^PH^^1^608^5550199|||M|||999-88-7777",
            control=control,
        )  # fmt: skip

    rich = a08(f"A08-{mrn}", "9 Pine Ct")
    thin = hl7_message(
        f"MSH|^~\\&|SUNQUEST|NWH|CARELOG|CARELOG|20261108071500-0500||ORU^R01^ORU_R01|R-{mrn}|P|2.5.1",
        f"PID|1||{mrn}^^^NWH^MR||Haddad^Omar",
        f"OBR|1|O-{mrn}^NWH_CPOE|L-{mrn}^NWH_LAB|58410-2^CBC panel^LN|||20261108060000-0500"
        "|||||||||||||||20261108071000-0500|||F",
        "OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|||||F",
        control=f"R-{mrn}",
    )  # fmt: skip
    moved = a08(f"A08B-{mrn}", "12 Oak Ave")
    publish(kafka_settings, [rich, thin, moved], key=f"NWH|{mrn}")
    versions = patient_versions(kafka_settings, worker, mrn, 2)
    assert [c.inbound_event_id for c in versions] == [rich.event_id, moved.event_id]
    assert [c.version for c in versions] == [1, 2]
    rejected = [e for _, e in read_all(kafka_settings, REJECTED) if isinstance(e, Rejected)]
    assert not [r for r in rejected if r.original_event_id == thin.event_id]
    current = orjson.loads(versions[-1].resource or "")
    assert current["address"][0]["line"] == ["12 Oak Ave"]  # the ADT feed still updates it
    assert current["telecom"] == [{"system": "phone", "value": "+1 (608) 5550199", "use": "home"}]
    assert current["maritalStatus"]["coding"][0]["code"] == "M"
    assert {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "999-88-7777"} in current[
        "identifier"
    ]


def test_the_worker_logs_json_lines_faust_included(worker: Worker) -> None:
    """The worker's log (stdout and stderr) is carelog's JSON lines, Faust's own lines too;
    librdkafka writes its own lines (`%<level>|...`) straight to stderr, outside Python."""
    wait_for(lambda: "Worker ready" in worker.log.read_text(), 120, worker)
    lines = [line for line in worker.log.read_text().splitlines() if not LIBRDKAFKA.match(line)]
    bodies = [parse_log_line(line) for line in lines]
    assert any(str(b["logger"]).startswith("faust.") for b in bodies)
    assert any("Worker ready" in str(b["message"]) for b in bodies)
