"""One validator for every format: what the translate stage refuses, whatever the channel.

Each test runs the translate stage as the worker does (`pipeline.translate_record`) on an
InboundMessage of one format and checks that bad output becomes a Rejected event whose
OperationOutcome names the resource, the element path and the rule.
"""

from __future__ import annotations

import copy
import re
from io import BytesIO
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.data import get_testdata_file

from processors.pipeline import Record, translate_record
from schemas.events import Channel, Format, InboundMessage, Rejected, ResourceTranslated
from streams.event_codec import decode_event, encode_event
from streams.topics import FHIR_TRANSLATED, REJECTED, inbound_topic
from tests.conftest import CORPUS

CONTENT_TYPES = {
    Format.fhir: "application/fhir+json",
    Format.device: "application/json",
    Format.dicom: "application/dicom",
    Format.hl7v2: "x-application/hl7-v2+er7",
}
DEVICE_BATCH: dict[str, Any] = orjson.loads(
    (CORPUS / "device" / "bedside_monitor_batch.json").read_bytes()
)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
# C0 controls FHIR strings may not hold (R4 2.24.0.1 string: only tab, CR and LF below 32).
FORBIDDEN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def stage(format: Format, payload: bytes, **headers: str) -> list[Rejected | ResourceTranslated]:
    """The events the translate stage writes for one inbound message."""
    event = InboundMessage.received(
        payload, channel=Channel.http, format=format, content_type=CONTENT_TYPES[format],
        sender="validation-test", headers=headers,
    )  # fmt: skip
    record = Record(inbound_topic(format), 0, 0, b"key", encode_event(event))
    out: list[Rejected | ResourceTranslated] = []
    for output in translate_record(record):
        decoded = decode_event(output.value)
        assert output.topic in (REJECTED, FHIR_TRANSLATED)
        assert isinstance(decoded, Rejected | ResourceTranslated)
        out.append(decoded)
    return out


def rejected(events: list[Rejected | ResourceTranslated]) -> Rejected:
    assert len(events) == 1 and isinstance(events[0], Rejected), events
    assert events[0].stage == "translate"
    return events[0]


def issues(rejection: Rejected) -> dict[str, str]:
    """location -> diagnostics of the rejection's OperationOutcome."""
    outcome = orjson.loads(rejection.operation_outcome)
    assert outcome["resourceType"] == "OperationOutcome"
    return {i["expression"][0]: i["diagnostics"] for i in outcome["issue"] if "expression" in i}


def fhir_create(resource: dict[str, Any]) -> list[Rejected | ResourceTranslated]:
    return stage(
        Format.fhir,
        orjson.dumps(resource),
        **{"http.method": "POST", "http.path": f"/fhir/{resource['resourceType']}"},
    )


def observation(code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }


# --- FHIR REST writes ----------------------------------------------------------------------


def test_fhir_write_with_a_wrong_loinc_check_digit_is_rejected_naming_the_code() -> None:
    found = issues(rejected(fhir_create(observation("8867-5", 72, "/min"))))
    assert "8867-5" in found["Observation.code.coding[0].code"]
    assert "check digit" in found["Observation.code.coding[0].code"]


def test_fhir_write_with_an_unknown_ucum_unit_is_rejected() -> None:
    found = issues(rejected(fhir_create(observation("8302-2", 3, "furlongs"))))
    assert "furlongs" in found["Observation.valueQuantity.code"]


def test_fhir_write_inside_a_bundle_is_located_in_its_entry() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": observation("8867-4", -5, "/min"),
                "request": {"method": "POST", "url": "Observation"},
            }
        ],
    }
    events = stage(
        Format.fhir, orjson.dumps(bundle), **{"http.method": "POST", "http.path": "/fhir"}
    )
    found = issues(rejected(events))
    assert "Heart rate" in found["Bundle.entry[0].resource.valueQuantity.value"]


def test_a_valid_fhir_write_passes() -> None:
    events = fhir_create(observation("8867-4", 72, "/min"))
    assert [type(e) for e in events] == [ResourceTranslated]


# --- device readings -----------------------------------------------------------------------


def device_batch(**reading: Any) -> bytes:
    batch = copy.deepcopy(DEVICE_BATCH)
    batch["readings"] = [{**batch["readings"][0], **reading}]
    return orjson.dumps(batch)


@pytest.mark.parametrize("value", [-5, 1e308])
def test_device_heart_rate_outside_any_plausible_range_is_rejected(value: float) -> None:
    found = issues(rejected(stage(Format.device, device_batch(value=value))))
    reason = found["readings[0].value"]  # by the contract, as the gateway refuses it
    assert "Heart rate" in reason and "/min" in reason


def test_device_reading_with_an_unknown_ucum_unit_is_rejected() -> None:
    batch = device_batch(code="2339-0", display="Glucose", value=5, unit="furlongs")
    found = issues(rejected(stage(Format.device, batch)))
    assert "furlongs" in found["readings[0].unit"]


def test_device_reading_with_a_wrong_loinc_check_digit_is_rejected() -> None:
    found = issues(rejected(stage(Format.device, device_batch(code="8867-5"))))
    assert "8867-5" in found["readings[0].code"]


def test_the_device_corpus_batch_passes() -> None:
    events = stage(Format.device, orjson.dumps(DEVICE_BATCH))
    assert events and all(isinstance(e, ResourceTranslated) for e in events)


# --- DICOM ---------------------------------------------------------------------------------


def dicom(**elements: Any) -> bytes:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    ds = dcmread(path)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_dicom_output_goes_through_the_validator() -> None:
    # IS allows 12 digits; ImagingStudy.series.number is an unsignedInt (at most 2^31-1).
    found = issues(rejected(stage(Format.dicom, dicom(SeriesNumber="99999999999"))))
    assert "2147483647" in found["ImagingStudy.series[0].number"]


def test_dicom_control_character_in_a_description_is_rejected() -> None:
    found = issues(rejected(stage(Format.dicom, dicom(StudyDescription="CT\x07HEAD"))))
    assert "U+0007" in found["ImagingStudy.description"]


def test_the_dicom_test_file_passes() -> None:
    events = stage(Format.dicom, dicom())
    assert len(events) == 2 and all(isinstance(e, ResourceTranslated) for e in events)


# --- HL7 v2 --------------------------------------------------------------------------------


def oru(obx: str, nte: str = "x") -> bytes:
    return (
        "\r".join(
            [
                "MSH|^~\\&|LAB|NWH|CARELOG|CARELOG|20261106071500-0500||ORU^R01^ORU_R01|C1|P|2.5.1",
                "PID|1||MRN5520^^^NWH^MR||Haddad^Omar^Y||19880217|M",
                "OBR|1|ORD-1^NWH_CPOE|LAB-1^NWH_LAB|58410-2^CBC panel^LN|||20261106060000-0500"
                "|||||||||||||||20261106071000-0500|||F",
                obx,
                f"NTE|1||{nte}",
            ]
        )
        + "\r"
    ).encode()


def test_hl7_heart_rate_below_zero_is_rejected() -> None:
    found = issues(
        rejected(stage(Format.hl7v2, oru("OBX|1|NM|8867-4^Heart rate^LN||-5|/min^/min^UCUM|||||F")))
    )
    assert "Heart rate" in found["Observation.valueQuantity.value"]


def test_hl7_number_overflowing_to_infinity_is_rejected() -> None:
    huge = "1" + "0" * 400 + ".5"
    found = issues(
        rejected(
            stage(Format.hl7v2, oru(f"OBX|1|NM|2339-0^Glucose^LN||{huge}|mg/dL^mg/dL^UCUM|||||F"))
        )
    )
    assert "finite" in found["Observation.valueQuantity.value"]


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in strings(v)]
    return [node] if isinstance(node, str) else []


HEX_ESCAPE = st.binary(min_size=1, max_size=4).map(lambda b: f"\\X{b.hex().upper()}\\")
TEXT = st.lists(HEX_ESCAPE | st.text(alphabet="abc XYZ019", max_size=5), max_size=6).map("".join)


@settings(max_examples=150, deadline=None)
@given(TEXT, TEXT)
def test_hl7_hex_escapes_never_put_a_control_character_in_a_fhir_string(
    value: str, note: str
) -> None:
    events = stage(Format.hl7v2, oru(f"OBX|1|ST|8302-2^Body height^LN||{value}||||||F", note))
    for event in events:
        assert isinstance(event, ResourceTranslated), event
        assert event.resource is not None
        assert not [s for s in strings(orjson.loads(event.resource)) if FORBIDDEN.search(s)]


def test_hl7_nul_escape_is_dropped_from_the_text() -> None:
    events = stage(Format.hl7v2, oru("OBX|1|ST|8302-2^Body height^LN||a\\X00\\b||||||F"))
    texts = [
        orjson.loads(e.resource)
        for e in events
        if isinstance(e, ResourceTranslated) and e.resource_type == "Observation" and e.resource
    ]
    assert [o["valueString"] for o in texts] == ["ab"]


def test_hl7_unit_declared_ucum_but_unknown_is_rejected() -> None:
    obx = "OBX|1|NM|2339-0^Glucose^LN||5.4|furlongs^furlongs^UCUM|||||F"
    found = issues(rejected(stage(Format.hl7v2, oru(obx))))
    assert "furlongs" in found["Observation.valueQuantity.code"]


def test_hl7_unit_without_a_system_is_claimed_ucum_only_when_it_is() -> None:
    def quantity(unit: str) -> dict[str, Any]:
        obx = f"OBX|1|NM|2339-0^Glucose^LN||5.4|{unit}|||||F"
        [result] = [
            orjson.loads(e.resource)
            for e in stage(Format.hl7v2, oru(obx))
            if isinstance(e, ResourceTranslated) and e.resource_type == "Observation" and e.resource
        ]
        return result["valueQuantity"]  # type: ignore[no-any-return]

    assert quantity("mmol/L") == {"value": 5.4, "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}
    assert quantity("mmol per litre") == {"value": 5.4, "unit": "mmol per litre"}
