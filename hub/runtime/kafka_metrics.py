"""Prometheus metrics of the Kafka runtime (no patient labels, base units)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

PUBLISHED = Counter("devsync_kafka_published_total", "Records acknowledged by the broker, per topic.", ["topic"])
PUBLISH_FAILURES = Counter(
    "devsync_kafka_publish_failures_total",
    "Records the broker did not acknowledge (the caller got SinkError and must retry).", ["topic", "reason"])
PUBLISH_SECONDS = Histogram(
    "devsync_kafka_publish_seconds", "Time from a publish call to the broker's acknowledgement of all its records.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
STAGE_EVENTS = Counter(
    "devsync_kafka_stage_events_total",
    "Events per stage and outcome (in, ready, parked, expired, dlq, duplicate, late, unparked, observation, audit).",
    ["stage", "outcome"])
BATCH_SECONDS = Histogram(
    "devsync_kafka_batch_seconds", "Time to process one batch: stages, produce and wait for acks, state write.",
    ["stage"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
CACHED_KEYS = Gauge("devsync_kafka_cached_keys", "State objects held in memory per stage.", ["stage"])
PARKED = Gauge("devsync_kafka_parked", "Events parked in this worker, waiting for a patient binding.")
OFFSET_REPAIRS = Counter(
    "devsync_kafka_offset_repairs_total",
    "Records the consumer skipped (read directly and processed) or repeated (dropped), per stage.",
    ["stage", "kind"])
CHECKPOINT_SECONDS = Histogram(
    "devsync_kafka_checkpoint_seconds", "Checkpoint: confirm outputs, serialise and write dirty state (before commit).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
