"""The FHIR REST API: writes appended as events, reads and search from the store."""
