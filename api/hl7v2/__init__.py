"""HL7 v2 over HTTP: POST /hl7v2, its ACKs and batches."""
