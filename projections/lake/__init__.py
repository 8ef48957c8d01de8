"""The Delta Lake sink: carelog.fhir.changes folded into bronze and silver Delta tables."""
