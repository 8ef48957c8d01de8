"""The versioning state recovered from the change records equals the state the stage kept:
a worker that starts on a partition's changes versions the next input as its predecessor
would have (processors/version_store.py)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from processors.version_store import _state_of, recover, state_after, state_header
from processors.versioning import VersionState, next_change
from schemas.events import Operation, ResourceChanged
from streams.event_codec import decode_event, encode_event
from streams.log_scan import LogRecord
from streams.privacy import envelope
from streams.privacy.keystore import MemoryKeyStore
from streams.producer import EventProducer, Headers, Outgoing
from streams.settings import Settings
from streams.topics import FHIR_CHANGES
from tests.processors.pipeline_driver import Pipeline
from tests.processors.test_version_policy import dicom, of_type
from tests.processors.test_versioning import PATIENT as PATIENT_FIELDS
from tests.processors.test_versioning import translated


def recovered(changes: list[tuple[ResourceChanged, VersionState]]) -> VersionState | None:
    """The state folded from change records, each with the header the worker wrote."""
    state = None
    for change, after in changes:
        state = state_after(change, dict([state_header(after)]), state)
    return state


PATIENT: dict[str, object] = dict(PATIENT_FIELDS)


def test_the_state_after_each_change_is_recovered_from_its_record() -> None:
    steps = [
        translated(PATIENT, offset=10),
        replace(translated(PATIENT, offset=3), inbound_partition=4),  # same content: no record
        translated({**PATIENT, "gender": "male"}, offset=12),
        translated(None, Operation.delete, offset=13),
        translated(PATIENT, offset=14),
    ]
    state: VersionState | None = None
    written: list[tuple[ResourceChanged, VersionState]] = []
    for step in steps:
        change, state = next_change(step, state)
        assert state is not None
        if change is not None:
            written.append((change, state))
            assert recovered(written) == state
    assert [c.version for c, _ in written] == [1, 2, 3, 4]
    # the input that changed nothing is among the positions the next change carries
    assert written[1][0].inbound_offset == 12
    assert recovered(written[:2]).applied == {  # type: ignore[union-attr]
        "carelog.inbound.hl7v2:2": 12, "carelog.inbound.hl7v2:4": 3,
    }  # fmt: skip


def test_a_redelivered_input_changes_nothing_after_recovery() -> None:
    _, state = next_change(translated(PATIENT, offset=20), None)
    change, state = next_change(translated({**PATIENT, "active": True}, offset=21), state)
    assert change is not None and state is not None
    again, _ = next_change(translated(PATIENT, offset=20), recovered([(change, state)]))
    assert again is None


def test_records_without_the_header_add_up_their_positions() -> None:
    first, one = next_change(translated(PATIENT, offset=30), None)
    other = replace(translated({**PATIENT, "active": True}, offset=5), inbound_partition=4)
    second, two = next_change(other, one)
    assert first is not None and second is not None and two is not None
    state = state_after(second, {}, state_after(first, {}, None))
    assert state == two


def test_a_merged_study_continues_from_the_recovered_state() -> None:
    instances = [{"SOPInstanceUID": f"1.2.4.1.{i}", "InstanceNumber": str(i)} for i in (1, 2, 3)]
    kept, restarted = Pipeline(), Pipeline()
    for elements in instances[:2]:
        [change] = of_type(kept.run(dicom(**elements))[0], "ImagingStudy")
    key = change.key.encode()
    state = kept.states[key]
    assert state is not None and state.resource is not None
    restarted.states[key] = state_after(change, dict([state_header(state)]), None)
    assert restarted.states[key] == state.sealed_with(None)  # the key id: see _state_of
    restarted.offsets = kept.offsets.copy()
    third = dicom(**instances[2])
    assert of_type(kept.run(third)[0], "ImagingStudy") == of_type(
        restarted.run(third)[0], "ImagingStudy"
    )


@pytest.mark.kafka
def test_a_partitions_states_are_read_back_from_its_changes(kafka_settings: Settings) -> None:
    def patient(**fields: object) -> dict[str, object]:
        return {**PATIENT, "id": key_id, **fields}

    key_id = str(uuid.uuid4())
    steps = [
        replace(translated(patient(), offset=10), resource_id=key_id),
        replace(translated(patient(), offset=3), resource_id=key_id, inbound_partition=4),
        replace(translated(patient(gender="male"), offset=12), resource_id=key_id),
    ]
    state: VersionState | None = None
    written = []
    for step in steps:
        change, state = next_change(step, state)
        assert change is not None or state is not None
        if change is not None and state is not None:
            headers: Headers = [state_header(state)]
            written.append(Outgoing(FHIR_CHANGES, change.key, encode_event(change), headers))
    assert change is not None and state is not None and len(written) == 2
    # then a change without the header (as written before it existed): folded onto the last
    bare = replace(change, version=3, inbound_partition=5, inbound_offset=2)
    written.append(Outgoing(FHIR_CHANGES, bare.key, encode_event(bare)))
    with EventProducer(kafka_settings) as producer:
        delivered = producer.send_many(written)
    assert len({d.partition for d in delivered}) == 1
    found = recover(kafka_settings, delivered[0].partition)[f"Patient/{key_id}"]
    sealed_with = decode_event(written[-1].value, open_phi=False).key_id  # type: ignore[union-attr]
    assert sealed_with is not None
    assert found == state_after(bare, {}, state).sealed_with(sealed_with)
    assert found.applied == {
        "carelog.inbound.hl7v2:2": 12, "carelog.inbound.hl7v2:4": 3, "carelog.inbound.hl7v2:5": 2
    }  # fmt: skip


class CountingKeys(MemoryKeyStore):
    """The in-process key store, counting the lookups of a key to open an event with."""

    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    def cipher(self, key_id: str) -> AESGCM | None:
        self.lookups += 1
        return super().cipher(key_id)


def test_recovery_opens_only_the_bodies_the_state_keeps() -> None:
    """Version, hash and positions are in clear on a change record: recovering a Patient's
    state looks up no key; a merged ImagingStudy's, whose state keeps its body, does."""
    keys = CountingKeys()
    envelope.install(keys)
    try:
        change, state = next_change(translated(PATIENT, offset=40), None)
        assert change is not None and state is not None
        sealed = encode_event(change)
        clear = decode_event(sealed, open_phi=False)
        assert isinstance(clear, ResourceChanged) and clear.sealed is not None
        record = LogRecord(FHIR_CHANGES, 0, 0, 0, change.key.encode(), sealed,
                           dict([state_header(state)]))  # fmt: skip
        assert _state_of(record, None) == state.sealed_with(clear.key_id)  # in clear too
        assert keys.lookups == 0

        pipeline = Pipeline()
        [study] = of_type(pipeline.run(dicom(SOPInstanceUID="1.2.4.9.1"))[0], "ImagingStudy")
        kept = pipeline.states[study.key.encode()]
        assert kept is not None and kept.resource is not None
        record = LogRecord(FHIR_CHANGES, 0, 1, 0, study.key.encode(), encode_event(study),
                           dict([state_header(kept)]))  # fmt: skip
        keys.lookups = 0  # the pipeline opened its own events
        assert _state_of(record, None) == kept
        assert keys.lookups == 1
    finally:
        envelope.install(None)
