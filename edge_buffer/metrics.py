"""Prometheus metrics of one edge gateway (its own registry, so several can live in one process).

No patient labels: only lane, data class, reason and upstream kind.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class EdgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.depth = Gauge("devsync_edge_queue_depth_events", "Events held in the buffer", ["data_class"], registry=r)
        self.bytes = Gauge("devsync_edge_queue_bytes", "Payload bytes held in the buffer", registry=r)
        self.file_bytes = Gauge("devsync_edge_queue_file_bytes", "Buffer file size incl. WAL", registry=r)
        self.oldest_age = Gauge(
            "devsync_edge_queue_oldest_age_seconds", "Age of the oldest buffered event", registry=r
        )
        self.fill_ratio = Gauge("devsync_edge_fill_ratio", "Fill of the quota (0..1, max of bytes and rows)", registry=r)
        self.fill_level = Gauge(
            "devsync_edge_fill_warning_level", "Highest configured fill warning level crossed (0 = none)", registry=r
        )
        self.appended = Counter("devsync_edge_appended_total", "Events committed to the buffer", ["data_class"], registry=r)
        self.shed = Counter(
            "devsync_edge_shed_total", "Events deleted unsent to stay within the quota", ["reason", "data_class"],
            registry=r,
        )
        self.refused = Counter(
            "devsync_edge_refused_total", "Events refused with back-pressure (buffer full)", ["reason"], registry=r
        )
        self.shedding_alert = Gauge(
            "devsync_edge_shedding_alert", "1 while the buffer sheds or refuses (cleared below the first fill level)",
            registry=r,
        )
        self.forwarded = Counter(
            "devsync_edge_forwarded_total", "Events acknowledged by the upstream", ["replayed"], registry=r
        )
        self.replay_rate = Gauge(
            "devsync_edge_replay_rate_events_per_second", "Forwarding rate of the last batch that held replayed events",
            registry=r,
        )
        self.rejected = Counter(
            "devsync_edge_rejected_total", "Events the upstream refused for good (kept in the rejected table)",
            ["upstream"], registry=r,
        )
        self.upstream_up = Gauge("devsync_edge_upstream_up", "1 when the upstream accepts batches", ["upstream"], registry=r)
        self.upstream_failures = Counter(
            "devsync_edge_upstream_failures_total", "Failed connects or batches", ["upstream"], registry=r
        )
        self.compactions = Counter("devsync_edge_compactions_total", "Compaction runs", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample (tests and /healthz); 0.0 when it was never set."""
        found = self.registry.get_sample_value(name, labels or {})
        return 0.0 if found is None else found
