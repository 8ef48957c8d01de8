"""From one inbound event to its resources: dispatch by format to the pure translators, then
validate what they produced, once, with the one validator (`processors.validation`)."""

from __future__ import annotations

from processors.translation import Translation
from processors.validation import validated
from schemas.events import Format, InboundMessage


def translate_event(event: InboundMessage, payload: bytes) -> Translation:
    """Translate the bytes of `event` (read from the blob store if it carries a reference).

    Raises:
        TranslationError: the input cannot be translated, or a resource it gives is invalid.
    """
    return validated(_translated(event, payload))


def _translated(event: InboundMessage, payload: bytes) -> Translation:
    if event.format is Format.hl7v2:
        from processors.hl7v2.adapter import translate_hl7v2

        return translate_hl7v2(payload, event.event_id)
    if event.format is Format.fhir:
        from processors.fhir_input import translate_fhir

        return translate_fhir(payload, event.headers, event.event_id)
    if event.format is Format.device:
        from processors.device_readings import translate_device

        return translate_device(payload, event.event_id)
    from processors.dicom_header import translate_dicom

    return translate_dicom(payload, event.event_id)
