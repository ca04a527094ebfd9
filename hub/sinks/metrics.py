"""Prometheus metrics of the sinks and the ledger (no patient labels, base units)."""

from __future__ import annotations

from functools import lru_cache

from prometheus_client import Counter, Gauge, Histogram

SINK_EVENTS = Counter(
    "devsync_sink_events_total",
    "Observations per sink and outcome: in = delivered + held + dlq (+ still in flight).",
    ["sink", "outcome"],
)
SINK_MESSAGES = Counter(
    "devsync_sink_messages_total",
    "Messages or bundles answered by the peer, by answer (AA, AE, AR, 2xx, 4xx, ...).",
    ["sink", "answer"],
)
SINK_RETRIES = Counter(
    "devsync_sink_retries_total",
    "Resends after a retriable failure (timeout, dropped connection, 429, 5xx).",
    ["sink", "cause"],
)
SINK_SEND_SECONDS = Histogram(
    "devsync_sink_send_seconds",
    "Time from sending a message or bundle to its answer.",
    ["sink"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SINK_QUEUED = Gauge("devsync_sink_queued", "Observations accepted by a sink and not yet answered.", ["sink"])
LATE_ACKS = Counter(
    "devsync_sink_late_acks_total", "ACKs ignored because MSA-2 named another message (late or stray).", ["sink"]
)
DLQ_REPLAYED = Counter("devsync_dlq_replayed_total", "Dead letters replayed, by result.", ["sink", "result"])


@lru_cache(maxsize=256)
def _events(sink: str, outcome: str):
    return SINK_EVENTS.labels(sink, outcome)


@lru_cache(maxsize=64)
def queued(sink: str):
    return SINK_QUEUED.labels(sink)


def count_events(sink: str, outcome: str, n: int = 1) -> None:
    if n:
        _events(sink, outcome).inc(n)
