"""The HL7 v2 (ER7) contract, the one both sides of the log follow.

The gateway and the MLLP listener accept a message, and the processor parses it, by the
same rules (`frame`: MSH, separators, character set, segment names), and both choose the
patient identifier from PID-3 by the same rule (`patient`): the Kafka key and the Patient id
come from one choice. So a message the edge answers AA never comes back from the processor
as malformed, and one patient's messages from one sender share a key.
"""
