"""Connector metrics (prometheus_client), shared by every connector.

Labels are connector names, message types and outcome codes only: never device-sent
identifiers that could carry patient data. Every connector adds its metrics here.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# --- shared by every connector ---
EVENTS_EMITTED = Counter(
    "devsync_connector_events_emitted_total",
    "Canonical events handed to emit() and accepted downstream.",
    ["connector"],
)
EMIT_FAILURES = Counter(
    "devsync_connector_emit_failures_total",
    "emit() raised; the device was not acknowledged (it will retry).",
    ["connector"],
)

# --- HL7 v2 over MLLP ---
MLLP_CONNECTIONS = Gauge("devsync_mllp_connections", "Open MLLP connections.")
MLLP_MESSAGES = Counter(
    "devsync_mllp_messages_total",
    "MLLP messages answered, by message type and acknowledgement code (AA, AE, AR).",
    ["message_type", "ack_code"],
)
MLLP_FRAMING_ERRORS = Counter(
    "devsync_mllp_framing_errors_total",
    "MLLP framing problems (data outside a block, oversized frame).",
    ["reason"],
)
MLLP_ACK_SECONDS = Histogram(
    "devsync_mllp_ack_seconds",
    "Time from a complete MLLP frame to its ACK being written.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
)

# --- HTTP ingest ---
HTTP_REQUESTS = Counter(
    "devsync_http_ingest_requests_total",
    "HTTP ingest requests by route and status code.",
    ["route", "status"],
)

# --- polling (poll-tcp, poll-http) and hybrid baseline polls ---
POLL_REQUESTS = Counter(
    "devsync_poll_requests_total",
    "Device polls by connector and outcome (ok, timeout, refused, http-error, decode-error, io-error).",
    ["connector", "outcome"],
)
POLL_SECONDS = Histogram(
    "devsync_poll_seconds",
    "Time from sending a poll request to a decoded answer.",
    ["connector"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
STALE_VALUES = Counter(
    "devsync_stale_values_total",
    "Values past their staleness limit, by action (flag-stale re-emits, flag-missing markers).",
    ["connector", "action"],
)

# --- MQTT ---
MQTT_MESSAGES = Counter(
    "devsync_mqtt_messages_total",
    "MQTT messages handled, by outcome (emitted, rejected).",
    ["outcome"],
)
MQTT_DECODE_ERRORS = Counter(
    "devsync_mqtt_decode_errors_total",
    "MQTT payloads that could not be decoded (acknowledged and reported, not redelivered).",
    ["reason"],
)
MQTT_CONNECTED = Gauge("devsync_mqtt_connected", "1 while the MQTT subscriber is connected to its broker.")
MQTT_RECONNECTS = Counter("devsync_mqtt_reconnects_total", "MQTT connections (re-)established after the first one.")

# --- hybrid (events plus baseline poll) ---
HYBRID_CORRECTIONS = Counter(
    "devsync_hybrid_corrections_total",
    "Corrective events emitted because a baseline poll found a value the event channel missed.",
)
HYBRID_EVENT_GAPS = Counter(
    "devsync_hybrid_event_gaps_total",
    "Missing device event sequence numbers seen on the hybrid event channel.",
)
HYBRID_FALLBACKS = Counter(
    "devsync_hybrid_fallbacks_total",
    "Times a hybrid device's event channel went silent and the connector fell back to polling.",
)

# --- IEEE 11073 SDC ---
SDC_REPORTS = Counter(
    "devsync_sdc_reports_total",
    "SDC episodic report states handled, by kind (metric, alert) and outcome (emitted, skipped, error).",
    ["kind", "outcome"],
)
