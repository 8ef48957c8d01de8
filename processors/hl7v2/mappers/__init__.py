"""HL7 v2 -> FHIR R4 mappers: one module per message family, each `map_message(msg, ctx)`."""
