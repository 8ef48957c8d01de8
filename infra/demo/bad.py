"""The deliberately bad messages of the demo (pure): one or two per channel, each with what
is wrong with it, so that the rejected path (carelog.rejected, with reasons) has something
to show. Some the gateway refuses at the door, the rest the processors reject."""

from __future__ import annotations

import random
import re

import orjson

from infra.demo import feeds, hl7
from infra.demo.outgoing import Outgoing
from infra.demo.people import FACILITY, Person, hl7_time
from schemas.events import Format

HL7_TYPE = "x-application/hl7-v2+er7"
STREAM = "deliberately bad"


def bad_messages(p: Person) -> list[Outgoing]:
    """Bad messages about patient `p` (who is otherwise well fed)."""
    tag = f"BAD-{p.mrn}"
    when = p.admitted
    no_pid3 = hl7.message(
        hl7.msh("DEMO_ADT", FACILITY, when, "ADT^A01^ADT_A01", f"{tag}-NOPID"),
        hl7.segment("EVN", {1: "A01", 2: hl7_time(when)}),
        hl7.segment("PID", {1: "1", 5: f"{p.family}^{p.given}", 7: "19700101", 8: p.sex}),
    )
    no_type = hl7.message(hl7.msh("DEMO_ADT", FACILITY, when, "", f"{tag}-NOTYPE"), hl7.pid(p))
    lab = hl7.lab_result(p, 0, random.Random(p.index))
    lab = lab.replace(f"{p.mrn}-0-ORU".encode(), f"{tag}-LOINC".encode())
    code = re.search(rb"\rOBX\|1\|NM\|(\d+)-(\d)", lab)
    assert code is not None
    typo = code.group(1) + b"-" + str((int(code.group(2)) + 1) % 10).encode()  # check digit
    lab = lab.replace(code.group(1) + b"-" + code.group(2), typo, 1)
    device = orjson.loads(feeds.readings(p, 0, random.Random(p.index)))
    device["device"]["id"] = f"{tag}-MONITOR"
    device["readings"][0]["unit"] = "mm[Hg]"  # a heart rate in mmHg
    observation = {
        "resourceType": "Observation",
        "identifier": [{"system": "urn:carelog:demo:bad", "value": f"{tag}-STATUS"}],
        "status": "finished",  # not an Observation status
        "code": {"coding": [{"system": feeds.LOINC, "code": "2345-7"}]},
        "subject": feeds.subject(p),
    }
    not_dicom = f"{tag}-NOT-DICOM: a JPEG export someone dragged into the PACS upload".encode()
    bad_sex = feeds.dicom_instance(
        p, "CR", feeds.STUDIES[0][1], "XR CHEST 1 VIEW", "CHEST", when, 99, sex="X"
    )
    dicom_tag = feeds.demo_uid("instance", p.mrn, 99)
    return [
        Outgoing(
            STREAM,
            "mllp",
            Format.hl7v2,
            no_pid3,
            "ADT^A01 without a patient identifier",
            bad="PID-3 (patient identifier list) is empty",
            tag=f"{tag}-NOPID",
        ),
        Outgoing(
            STREAM,
            "mllp",
            Format.hl7v2,
            no_type,
            "HL7 message without MSH-9",
            bad="MSH-9 (message type) is missing",
            tag=f"{tag}-NOTYPE",
        ),
        Outgoing(
            STREAM,
            "http",
            Format.hl7v2,
            lab,
            "ORU^R01 with a LOINC typo",
            path="/hl7v2",
            content_type=HL7_TYPE,
            bad=f"OBX-3 LOINC {typo.decode()} has a wrong check digit",
            tag=f"{tag}-LOINC",
        ),
        Outgoing(
            STREAM,
            "http",
            Format.device,
            orjson.dumps(device),
            "heart rate in mm[Hg]",
            path="/devices/readings",
            content_type="application/json",
            bad="a heart rate reading in mm[Hg]",
            tag=f"{tag}-MONITOR",
        ),
        Outgoing(
            STREAM,
            "http",
            Format.fhir,
            orjson.dumps(observation),
            "FHIR Observation with status 'finished'",
            path="/fhir/Observation",
            content_type="application/fhir+json",
            headers=(("Prefer", "respond-async"),),
            bad="'finished' is not an Observation.status",
            tag=f"{tag}-STATUS",
        ),
        _stow(
            [not_dicom],
            "a STOW-RS part that is not DICOM",
            "no DICM preamble",
            f"{tag}-NOT-DICOM",
            f"demo-bad-{p.mrn}-1",
        ),
        _stow(
            [bad_sex],
            "DICOM instance with PatientSex X",
            "PatientSex 'X' is not M, F or O",
            dicom_tag,
            f"demo-bad-{p.mrn}-2",
        ),
    ]


def _stow(parts: list[bytes], label: str, bad: str, tag: str, boundary: str) -> Outgoing:
    body, content_type = feeds.multipart(parts, boundary)
    return Outgoing(
        STREAM,
        "http",
        Format.dicom,
        body,
        label,
        path="/dicomweb/studies",
        content_type=content_type,
        parts=tuple(parts),
        bad=bad,
        tag=tag,
    )
