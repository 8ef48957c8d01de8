"""Order numbers (placer PLAC, filler FILL) take their Identifier.system from the configured
authorities like every other identifier: one builder, processors.ids.order_identifier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from processors.hl7v2.context import MappingContext
from processors.hl7v2.mapping import map_hl7v2
from processors.ids import LOCAL_SYSTEM_BASE

from .builders import MSH, PID

CORPUS = Path(__file__).resolve().parents[2] / "corpus" / "hl7v2"
RDE = [
    MSH.format(type="RDE^O11^RDE_O11"),
    PID,
    "ORC|NW|RX1^PHARM|RXF1^DISP||||||20260101",
    "RXE|^^^20260101^^R|00904-5748^Acetaminophen^NDC|500||mg",
]

VXU = [
    MSH.format(type="VXU^V04^VXU_V04"),
    PID,
    "ORC|RE|PL9^EHR|IMM1^FAC",
    "RXA|0|1|20260101||208^vaccine^CVX|||||||||||||||||20260102",
]


def order_identifiers(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        i
        for r in resources
        for i in r.get("identifier", [])
        if i.get("type", {}).get("coding", [{}])[0].get("code") in ("PLAC", "FILL")
    ]


# One message per builder's caller: ORM (requests), ORU (oru, specimens), VXU, RDE (pharmacy).
MESSAGES = {
    name: (CORPUS / name).read_bytes()
    for name in (
        "orm_o01_order_v2.4.hl7",
        "oru_r01_cbc_v2.5.1.hl7",
    )
}
MESSAGES["vxu_v04_inline"] = "\r".join(VXU).encode()
MESSAGES["rde_o11_inline"] = "\r".join(RDE).encode()


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_order_numbers_follow_the_configured_authority(name: str) -> None:
    default = order_identifiers(map_hl7v2(MESSAGES[name]).resources)
    namespaces = {
        i["system"].removeprefix(LOCAL_SYSTEM_BASE)
        for i in default
        if i.get("system", "").startswith(LOCAL_SYSTEM_BASE)
    }
    assert namespaces, f"{name} carries no order number with a namespace"
    configured = {ns: f"https://orders.example/{ns}" for ns in namespaces}
    resources = map_hl7v2(MESSAGES[name], MappingContext(authorities=configured)).resources
    systems = {i.get("system") for i in order_identifiers(resources) if "system" in i}
    assert systems == set(configured.values())
