"""HL7 v2 processor: a fast ER7 parser and the HL7 v2 -> FHIR R4 mappers (pure functions)."""
