"""The edge seals an HL7 v2 message with its patient's key when it names one patient only
(processors.ids.hl7v2_owner, from the frame alone), and a device batch with its patient's. That is right only if the worker maps
that message to that same Patient and to no other: then erasing the patient shreds the key
of everything the message became, and of the message, and of nobody else's data."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from processors.device_readings import device_patient_id, translate_device
from processors.hl7v2.errors import Hl7v2Error
from processors.hl7v2.mapping import map_hl7v2
from processors.ids import hl7v2_owner
from schemas.device_batch import read_batch
from schemas.hl7v2.errors import FormatError
from schemas.hl7v2.frame import read_er7
from schemas.hl7v2.patient import message_patient
from streams.privacy.envelope import patients_in

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [*ROOT.glob("tests/corpus/hl7v2*/*.hl7"), *(ROOT.parent / "shared/corpus").glob("hl7v2/*.hl7")]
)


def _cases() -> list[tuple[Path, bytes]]:
    cases = []
    for path in FILES:
        try:
            read_er7(path.read_bytes())
        except FormatError:
            continue  # refused at the edge: sealed as a rejection, never by a patient's key
        cases.append((path, path.read_bytes()))
    return cases


CASES = _cases()


def test_the_corpus_exercises_both_answers() -> None:
    owners = [hl7v2_owner(e, message_patient(e)) for e in (read_er7(p) for _, p in CASES)]
    assert sum(o is not None for o in owners) >= 50
    assert sum(o is None for o in owners) >= 5  # merges, links, swaps: two patients named


@pytest.mark.parametrize("path,payload", CASES, ids=[p.name for p, _ in CASES])
def test_the_edge_names_the_patient_the_worker_maps_and_no_other(
    path: Path, payload: bytes
) -> None:
    er7 = read_er7(payload)
    owner = hl7v2_owner(er7, message_patient(er7))
    try:
        mapped = map_hl7v2(payload)
    except Hl7v2Error:
        return  # rejected by the worker: a Rejected event, sealed with a message key
    named = set()
    for resource in mapped.resources:
        text = orjson.dumps(resource).decode()
        named |= patients_in(resource["resourceType"], resource["id"], text)
    if owner is not None:
        assert named <= {owner}, f"{path.name}: sealed for {owner}, maps {named}"
        patients = [r["id"] for r in mapped.resources if r["resourceType"] == "Patient"]
        assert patients in ([], [owner])
    else:
        pids = sum(s.startswith("PID|") for s in er7.segments)
        mrg = any(s.startswith("MRG|") for s in er7.segments)
        assert pids != 1 or mrg, path.name


DEVICE_FILES = sorted(
    [
        *ROOT.glob("tests/corpus/device/*.json"),
        *(ROOT.parent / "shared/corpus").glob("device/*.json"),
    ]
)


@pytest.mark.parametrize("path", DEVICE_FILES, ids=[p.name for p in DEVICE_FILES])
def test_a_device_batch_is_about_the_patient_the_edge_names(path: Path) -> None:
    payload = path.read_bytes()
    owner = device_patient_id(read_batch(payload).patient)
    resources = [t.resource for t in translate_device(payload, "e1").resources]
    named = set()
    for resource in resources:
        named |= patients_in(
            resource["resourceType"], resource["id"], orjson.dumps(resource).decode()
        )
    assert named == {owner}
