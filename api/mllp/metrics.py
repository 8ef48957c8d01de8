"""Prometheus metrics of the MLLP listener (default registry; served by `carelog mllp
--metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Counter("carelog_mllp_connections", "MLLP connections accepted.")
CONNECTIONS_REFUSED = Counter(
    "carelog_mllp_connections_refused",
    "MLLP connections closed as soon as accepted, by reason (limit: CARELOG_MLLP_MAX_CONNECTIONS).",
    ["reason"],
)
OPEN_CONNECTIONS = Gauge("carelog_mllp_open_connections", "MLLP connections open now.")
MESSAGES = Counter(
    "carelog_mllp_messages",
    "What arrived over MLLP: frame (a whole message) or broken (bytes refused as framing).",
    ["kind"],
)
ACKS = Counter("carelog_mllp_acks", "ACKs sent, by acknowledgment code.", ["code"])
REFUSED = Counter("carelog_mllp_refused", "Input kept on carelog.rejected, by reason.", ["reason"])
ACK_SECONDS = Histogram(
    "carelog_mllp_ack_seconds",
    "From a message's end block to its ACK being written.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0),
)

FRAMES = MESSAGES.labels("frame")
BROKEN = MESSAGES.labels("broken")
ACKS_WITHHELD = Counter(
    "carelog_mllp_acks_withheld",
    "Messages answered with no ACK because their MSH-15 asked for none (NE, ER, SU).",
)
ACKS_BY_CODE = {code: ACKS.labels(code) for code in ("AA", "AE", "AR", "CA", "CE", "CR")}
