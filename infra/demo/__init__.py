"""`carelog demo`: a deterministic synthetic hospital stream sent through a running carelog.

people   -> who: synthetic patients and their stays (pure)
hl7      -> ADT A01/A08/A02/A03 and ORU^R01 in the shapes the mappers accept (pure)
feeds    -> device readings, DICOM instances, FHIR app writes (pure)
bad      -> the deliberately bad messages and why each is bad (pure)
plan     -> the whole stream in phases, as Outgoing messages (pure)
senders  -> MLLP and HTTP senders with progress bars
report   -> what to look at afterwards: FHIR, Delta rows, rejections
command  -> the `carelog demo` subcommand
"""
