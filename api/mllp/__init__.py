"""HL7 v2 over MLLP (TCP/TLS): framing, the listener and its process."""
