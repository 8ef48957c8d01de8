"""Vital-sign codes of bedside devices: LOINC, IEEE 11073-10101 (MDC) and UCUM units.

MDC codes are the context-free form (partition 2, SCADA: 2 * 65536 + term code), as
devices and the FHIR Personal Health Device IG send them. Each maps to the LOINC code of
the FHIR R4 vital signs profiles; pulse oximetry also carries 2708-6, which the R4
oxygensat profile requires beside 59408-5.
"""

from __future__ import annotations

from dataclasses import dataclass

LOINC = "http://loinc.org"
MDC = "urn:iso:std:iso:11073:10101"
UCUM = "http://unitsofmeasure.org"


@dataclass(frozen=True, slots=True)
class VitalSign:
    loinc: str
    display: str
    units: frozenset[str]  # the UCUM codes this measurement may come in
    also: tuple[tuple[str, str], ...] = ()  # further LOINC codings (code, display)


_PER_MIN = frozenset({"/min"})
_MM_HG = frozenset({"mm[Hg]"})
_PERCENT = frozenset({"%"})

VITAL_SIGNS: dict[str, VitalSign] = {
    v.loinc: v
    for v in (
        VitalSign("8867-4", "Heart rate", _PER_MIN),
        VitalSign("8889-8", "Heart rate by Pulse oximetry", _PER_MIN),
        VitalSign(
            "59408-5",
            "Oxygen saturation in Arterial blood by Pulse oximetry",
            _PERCENT,
            (("2708-6", "Oxygen saturation in Arterial blood"),),
        ),
        VitalSign("8480-6", "Systolic blood pressure", _MM_HG),
        VitalSign("8462-4", "Diastolic blood pressure", _MM_HG),
        VitalSign("8478-0", "Mean blood pressure", _MM_HG),
        VitalSign("9279-1", "Respiratory rate", _PER_MIN),
        VitalSign("8310-5", "Body temperature", frozenset({"Cel", "[degF]"})),
    )
}

# MDC code -> (MDC reference id, LOINC code)
MDC_TO_LOINC: dict[str, tuple[str, str]] = {
    "147842": ("MDC_ECG_HEART_RATE", "8867-4"),
    "149546": ("MDC_PULS_RATE_NON_INV", "8867-4"),
    "149530": ("MDC_PULS_OXIM_PULS_RATE", "8889-8"),
    "150456": ("MDC_PULS_OXIM_SAT_O2", "59408-5"),
    "150021": ("MDC_PRESS_BLD_NONINV_SYS", "8480-6"),
    "150022": ("MDC_PRESS_BLD_NONINV_DIA", "8462-4"),
    "150023": ("MDC_PRESS_BLD_NONINV_MEAN", "8478-0"),
    "150033": ("MDC_PRESS_BLD_ART_SYS", "8480-6"),
    "150034": ("MDC_PRESS_BLD_ART_DIA", "8462-4"),
    "150035": ("MDC_PRESS_BLD_ART_MEAN", "8478-0"),
    "151562": ("MDC_RESP_RATE", "9279-1"),
    "150364": ("MDC_TEMP_BODY", "8310-5"),
}

# Spellings devices use for the UCUM codes above.
UNIT_ALIASES: dict[str, str] = {
    "bpm": "/min",
    "beats/min": "/min",
    "breaths/min": "/min",
    "{beats}/min": "/min",
    "{breaths}/min": "/min",
    "mmHg": "mm[Hg]",
    "degC": "Cel",
    "°C": "Cel",
    "degF": "[degF]",
    "°F": "[degF]",
}
