"""Pipeline metrics (Prometheus). Names in base units; labels bounded (no patient ids).

Connectors, sinks and the edge gateway keep their own metrics modules
(connectors/metrics.py, hub/sinks/metrics.py, edge_buffer/metrics.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Buckets around the data classes' latency budgets (alarm 0.5 s ... trend 60 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 30, 60, 120, 300)

EVENTS_IN = Counter("devsync_events_in_total", "Events entering a stage", ["stage", "data_class"])
EVENTS_OUT = Counter("devsync_events_out_total", "Events leaving a stage", ["stage", "data_class"])
DUPLICATES = Counter("devsync_duplicates_total", "Redelivered events dropped by event id", ["data_class"])
REORDERED = Counter("devsync_reordered_total", "Events that arrived out of order and were put back in order",
                    ["data_class"])
LATE = Counter("devsync_late_total", "Events later than their reorder window (passed on, flagged late)", ["data_class"])
PARKED = Counter("devsync_parked_total", "Events parked waiting for a patient association", ["data_class"])
UNPARKED = Counter("devsync_unparked_total", "Parked events released by an association", [])
PARKED_NOW = Gauge("devsync_parked_events", "Events parked right now")
PARKED_OLDEST = Gauge("devsync_parked_oldest_age_seconds", "Age of the oldest parked event")
DLQ = Counter("devsync_dlq_total", "Events sent to the dead-letter queue", ["step"])
CONFLICTS = Counter("devsync_conflicts_resolved_total", "Resolution decisions with more than one candidate",
                    ["policy"])
DECISIONS = Counter("devsync_decisions_total", "Resolution decisions", ["policy"])
REVIEW = Counter("devsync_review_flagged_total", "Decisions flagged for manual review", [])
LATENCY_DEVICE = Histogram("devsync_latency_device_to_out_seconds",
                           "Corrected device time to leaving the pipeline", ["data_class"], buckets=LATENCY_BUCKETS)
LATENCY_RECEIVED = Histogram("devsync_latency_received_to_out_seconds",
                             "Connector receive time to leaving the pipeline", ["data_class"], buckets=LATENCY_BUCKETS)
BUDGET_VIOLATIONS = Counter("devsync_latency_budget_violations_total",
                            "Observations later than their data class's latency budget", ["data_class"])
QUEUE_DEPTH = Gauge("devsync_runtime_queue_depth", "Events waiting in the embedded runtime's input queue")

# Operations (set by hub/health.py: its checks and the rules it is given; see docs/operations.md).
LATENCY_BUDGET = Gauge("devsync_latency_budget_seconds", "Latency budget of each data class (sync_profiles)",
                       ["data_class"])
CONNECTOR_UP = Gauge("devsync_connector_up", "1 while a connector reports up or degraded, 0 when down", ["connector"])
HEALTH_CHECK_UP = Gauge("devsync_health_check_up", "1 when a readiness or liveness check passed on its last run",
                        ["check"])
KAFKA_CONSUMER_LAG = Gauge("devsync_kafka_consumer_lag_records",
                           "Records a consumer group has not committed yet (high watermark - committed)",
                           ["group", "topic"])
