"""Writes the Grafana dashboards of this folder (Grafana 10+ JSON, schemaVersion 39).

    python deploy/grafana/build_dashboards.py        # rewrites deploy/grafana/*.json

The JSON files are the product (import them into Grafana or mount them through a dashboard
provider); this script keeps their layout consistent. tests/ops checks that the files are what
this script writes, that every metric they query is exported by the hub, and evaluates every
query against a real Prometheus scraping a running hub.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
SINK_ERROR = 'answer!~"AA|CA|2..|0x0000|0xB..."'
POLL_FAILED = 'outcome!="ok"'


def target(expr: str, legend: str = "", ref: int = 0) -> dict:
    return {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": chr(ord("A") + ref),
            "range": True}


def panel(kind: str, title: str, description: str, targets: list[tuple[str, str]], unit: str = "short",
          w: int = 12, h: int = 8, thresholds: list[tuple[str, float | None]] | None = None, **options) -> dict:
    steps = [{"color": c, "value": v} for c, v in (thresholds or [("green", None)])]
    field = {"defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}}, "overrides": []}
    if kind == "timeseries":
        field["defaults"]["custom"] = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                                       "spanNulls": False}
        opts = {"legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                           "calcs": ["lastNotNull", "max"]}, "tooltip": {"mode": "multi", "sort": "desc"}}
    else:
        opts = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "area", "textMode": "auto", "orientation": "auto"}
    opts.update(options)
    return {"type": kind, "title": title, "description": description, "datasource": DS,
            "targets": [target(e, legend, i) for i, (e, legend) in enumerate(targets)],
            "fieldConfig": field, "options": opts, "gridPos": {"w": w, "h": h}}


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": {"w": 24, "h": 1}}


def rate(metric: str, by: str, selector: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[{RI}]))" if selector else \
        f"sum by ({by}) (rate({metric}[{RI}]))"


def zero_filled(expr: str, like: str) -> str:
    """`expr`, or 0 for every series of `like` where expr has none (a quiet error panel shows 0, not 'No data')."""
    return f"({expr}) or (0 * ({like}))"


def dashboard(uid: str, title: str, description: str, items: list[dict]) -> dict:
    x = y = 0
    line_h = 0
    for i, item in enumerate(items, start=1):
        item["id"] = i
        w, h = item["gridPos"]["w"], item["gridPos"]["h"]
        if item["type"] == "row" or x + w > 24:
            x, y = 0, y + line_h
            line_h = 0
        item["gridPos"].update({"x": x, "y": y})
        x += w
        line_h = max(line_h, h)
        if item["type"] == "row":
            x, y, line_h = 0, y + 1, 0
    return {
        "uid": uid, "title": title, "description": description, "tags": ["devsync"], "timezone": "utc",
        "editable": True, "graphTooltip": 1, "schemaVersion": 39, "version": 1, "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"}, "fiscalYearStartMonth": 0, "liveNow": False,
        "annotations": {"list": [{"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                                  "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
                                  "name": "Annotations & Alerts", "type": "dashboard"}]},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "options": []}]},
        "links": [{"title": "DeviceSync dashboards", "type": "dashboards", "tags": ["devsync"], "asDropdown": True}],
        "panels": items,
    }


def overview() -> dict:
    out = 'devsync_events_out_total{stage="pipeline"}'
    out_by_class = rate("devsync_events_out_total", "data_class", 'stage="pipeline"')
    p99 = (f"histogram_quantile(0.99, sum by (data_class, le) "
           f"(rate(devsync_latency_received_to_out_seconds_bucket[{RI}])))")
    return dashboard("devsync-overview", "DeviceSync Hub / Overview",
                     "Throughput, latency against each data class's budget, and errors of the whole hub.", [
        row("Throughput"),
        panel("stat", "Events in", "Events entering the pipeline, per second.",
              [(f"sum(rate(devsync_events_in_total[{RI}]))", "in")], "reqps", w=6, h=4),
        panel("stat", "Observations out", "Observations leaving the pipeline towards the sinks, per second.",
              [(f"sum(rate({out}[{RI}]))", "out")], "reqps", w=6, h=4),
        panel("stat", "Parked now", "Events waiting for a patient association.",
              [("sum(devsync_parked_events)", "parked")], "short", w=6, h=4,
              thresholds=[("green", None), ("orange", 100)]),
        panel("stat", "Readiness checks failing", "Health checks (database, broker, sinks) failing now.",
              [("count(devsync_health_check_up == 0) or vector(0)", "failing")], "short", w=6, h=4,
              thresholds=[("green", None), ("red", 1)]),
        panel("timeseries", "Events in by data class", "Per second, by data class.",
              [(rate("devsync_events_in_total", "data_class"), "{{data_class}}")], "reqps"),
        panel("timeseries", "Observations out by data class", "Per second, by data class.",
              [(rate("devsync_events_out_total", "data_class", 'stage="pipeline"'), "{{data_class}}")], "reqps"),
        row("Latency against budget"),
        panel("timeseries", "p99 latency vs budget (received -> delivered)",
              "99th percentile of connector receive time to leaving the pipeline, with each class's "
              "latency budget (sync_profiles[].latency_budget_s) drawn as its own line.",
              [(p99, "{{data_class}} p99"),
               ("max by (data_class) (devsync_latency_budget_seconds)", "{{data_class}} budget")], "s", w=12),
        panel("timeseries", "p50 latency (device time -> delivered)",
              "Median of the corrected device time to leaving the pipeline, by data class.",
              [((f"histogram_quantile(0.5, sum by (data_class, le) "
                 f"(rate(devsync_latency_device_to_out_seconds_bucket[{RI}])))"), "{{data_class}}")], "s"),
        panel("timeseries", "Share of observations over budget",
              "Budget violations / observations out, by data class (0 when none).",
              [(zero_filled(f"{rate('devsync_latency_budget_violations_total', 'data_class')} / {out_by_class}",
                            out_by_class), "{{data_class}}")],
              "percentunit", thresholds=[("green", None), ("red", 0.05)]),
        panel("timeseries", "Ordering: duplicates, reordered, late, parked",
              "Redeliveries dropped, events put back in order, events later than the reorder window, "
              "events parked for association (per second).",
              [(f"sum(rate(devsync_duplicates_total[{RI}]))", "duplicates"),
               (f"sum(rate(devsync_reordered_total[{RI}]))", "reordered"),
               (f"sum(rate(devsync_late_total[{RI}]))", "late"),
               (f"sum(rate(devsync_parked_total[{RI}]))", "parked")], "reqps"),
        row("Errors and decisions"),
        panel("timeseries", "Dead letters", "Events sent to the DLQ by the pipeline (by step) and by the sinks.",
              [(rate("devsync_dlq_total", "step"), "pipeline {{step}}"),
               (zero_filled(rate("devsync_sink_events_total", "sink", 'outcome="dlq"'),
                            rate("devsync_sink_events_total", "sink", 'outcome="in"')), "sink {{sink}}")], "reqps"),
        panel("timeseries", "Conflicts resolved by policy", "Resolution decisions with more than one candidate.",
              [(rate("devsync_conflicts_resolved_total", "policy"), "{{policy}}")], "reqps"),
        panel("timeseries", "Oldest parked event", "Age of the oldest event waiting for a patient association.",
              [("max(devsync_parked_oldest_age_seconds)", "oldest")], "s",
              thresholds=[("green", None), ("orange", 900)]),
        panel("timeseries", "Health checks", "1 = passing, 0 = failing, per readiness/liveness check.",
              [("min by (check) (devsync_health_check_up)", "{{check}}")], "short"),
        row("Kafka runtime"),
        panel("timeseries", "Consumer lag", "Records not yet committed per consumer group and topic "
              "(measured by the broker readiness check).",
              [("max by (group, topic) (devsync_kafka_consumer_lag_records)", "{{group}} {{topic}}")], "short", w=8,
              thresholds=[("green", None), ("orange", 10000)]),
        panel("timeseries", "Records published", "Records acknowledged by the brokers, per topic.",
              [(rate("devsync_kafka_published_total", "topic"), "{{topic}}")], "reqps", w=8),
        panel("timeseries", "Worker batch time p99", "Time to process one batch (stages, produce, acks, state).",
              [(f"histogram_quantile(0.99, sum by (stage, le) (rate(devsync_kafka_batch_seconds_bucket[{RI}])))",
                "{{stage}}")], "s", w=8),
    ])


def sinks() -> dict:
    messages = rate("devsync_sink_messages_total", "sink")
    return dashboard("devsync-sinks", "DeviceSync Hub / Sinks",
                     "Delivery to the EHR: HL7 v2 over MLLP, PCD-04 alarms, FHIR R4, DICOM; retries and DLQ.", [
        row("Deliveries"),
        panel("timeseries", "Observations by sink and outcome",
              "in = delivered + held + dlq (+ in flight); duplicate = already delivered (ledger).",
              [(rate("devsync_sink_events_total", "sink, outcome"), "{{sink}} {{outcome}}")], "reqps", w=24),
        panel("timeseries", "Messages by answer", "Messages or bundles answered by the peer (AA/AE/AR, HTTP status, "
              "DICOM status).", [(rate("devsync_sink_messages_total", "sink, answer"), "{{sink}} {{answer}}")], "reqps"),
        panel("timeseries", "Error answers", "Share of messages not accepted by the peer, per sink (0 when none).",
              [(zero_filled(f"{rate('devsync_sink_messages_total', 'sink', SINK_ERROR)} / {messages}",
                            messages), "{{sink}}")], "percentunit", thresholds=[("green", None), ("red", 0.05)]),
        row("Latency and back-pressure"),
        panel("timeseries", "Send latency p50 / p99", "Time from sending a message or bundle to its answer.",
              [(f"histogram_quantile(0.5, sum by (sink, le) (rate(devsync_sink_send_seconds_bucket[{RI}])))",
                "{{sink}} p50"),
               (f"histogram_quantile(0.99, sum by (sink, le) (rate(devsync_sink_send_seconds_bucket[{RI}])))",
                "{{sink}} p99")], "s"),
        panel("timeseries", "Waiting for an answer", "Observations accepted by a sink and not yet answered.",
              [("sum by (sink) (devsync_sink_queued)", "{{sink}}")], "short"),
        panel("timeseries", "Retries by cause", "Resends after timeouts, dropped connections, 429 and 5xx.",
              [(zero_filled(rate("devsync_sink_retries_total", "sink, cause"), messages), "{{sink}} {{cause}}")],
              "reqps"),
        panel("timeseries", "Late or stray ACKs", "ACKs ignored because MSA-2 named another message.",
              [(zero_filled(rate("devsync_sink_late_acks_total", "sink"), messages), "{{sink}}")], "reqps"),
    ])


def connectors() -> dict:
    emitted = rate("devsync_connector_events_emitted_total", "connector")
    return dashboard("devsync-connectors", "DeviceSync Hub / Connectors and devices",
                     "Device-facing connectors: health, events, MLLP, HTTP, MQTT and polling.", [
        row("Health"),
        panel("timeseries", "Connector up", "1 while a connector reports up or degraded, 0 when down.",
              [("max by (connector) (devsync_connector_up)", "{{connector}}")], "short",
              thresholds=[("red", None), ("green", 1)]),
        panel("timeseries", "Events emitted", "Canonical events accepted downstream, per connector.",
              [(emitted, "{{connector}}"),
               (zero_filled(rate("devsync_connector_emit_failures_total", "connector"), emitted),
                "{{connector}} emit failures")], "reqps"),
        row("HL7 v2 over MLLP and HTTP ingest"),
        panel("timeseries", "MLLP messages by type and ACK", "Messages answered, by message type and ACK code.",
              [(rate("devsync_mllp_messages_total", "message_type, ack_code"), "{{message_type}} {{ack_code}}")],
              "reqps", w=8),
        panel("timeseries", "MLLP ACK latency p99", "Complete frame to ACK written.",
              [(f"histogram_quantile(0.99, sum by (le) (rate(devsync_mllp_ack_seconds_bucket[{RI}])))", "p99")],
              "s", w=8),
        panel("timeseries", "MLLP connections", "Open MLLP connections.",
              [("sum(devsync_mllp_connections)", "open")], "short", w=8),
        panel("timeseries", "HTTP ingest requests", "By route and status code.",
              [(rate("devsync_http_ingest_requests_total", "route, status"), "{{route}} {{status}}")], "reqps"),
        panel("timeseries", "MQTT", "1 while connected to the broker; messages by outcome.",
              [("max(devsync_mqtt_connected)", "connected"),
               (rate("devsync_mqtt_messages_total", "outcome"), "{{outcome}}")], "short"),
        row("Polling"),
        panel("timeseries", "Polls by outcome", "Device polls by connector and outcome (ok, timeout, refused, ...).",
              [(rate("devsync_poll_requests_total", "connector, outcome"), "{{connector}} {{outcome}}")], "reqps"),
        panel("timeseries", "Poll error share", "Polls not ok / all polls, per connector.",
              [((f"{rate('devsync_poll_requests_total', 'connector', POLL_FAILED)} / "
                 f"{rate('devsync_poll_requests_total', 'connector')}"), "{{connector}}")], "percentunit",
              thresholds=[("green", None), ("red", 0.2)]),
    ])


def edge() -> dict:
    return dashboard("devsync-edge", "DeviceSync Hub / Edge gateways",
                     "Store-and-forward buffers at the edge: fill, age, shedding, upstream and replay.", [
        row("Buffer"),
        panel("timeseries", "Fill of the quota", "Max of bytes and rows against the quota; alerts at 50% and 80%.",
              [("max by (instance) (devsync_edge_fill_ratio)", "{{instance}}")], "percentunit",
              thresholds=[("green", None), ("orange", 0.5), ("red", 0.8)], min=0, max=1),
        panel("timeseries", "Oldest buffered event", "Age of the oldest event not yet acknowledged upstream.",
              [("max by (instance) (devsync_edge_queue_oldest_age_seconds)", "{{instance}}")], "s",
              thresholds=[("green", None), ("orange", 300)]),
        panel("timeseries", "Events held by lane", "Lane 0 = alarms and associations (replayed first).",
              [("sum by (instance, lane) (devsync_edge_queue_depth_events)", "{{instance}} lane {{lane}}")], "short"),
        panel("timeseries", "Bytes held", "Payload bytes in the buffer and the SQLite file size (with WAL).",
              [("sum by (instance) (devsync_edge_queue_bytes)", "{{instance}} payload"),
               ("sum by (instance) (devsync_edge_queue_file_bytes)", "{{instance}} file")], "bytes"),
        row("Flow"),
        panel("timeseries", "Appended and forwarded", "Events committed to the buffer and acknowledged upstream.",
              [(rate("devsync_edge_appended_total", "instance"), "{{instance}} appended"),
               (rate("devsync_edge_forwarded_total", "instance, replayed"), "{{instance}} forwarded replayed={{replayed}}")],
              "reqps"),
        panel("timeseries", "Shed and refused", "Events deleted unsent to stay in the quota, or refused (data lost).",
              [(rate("devsync_edge_shed_total", "instance, data_class"), "{{instance}} shed {{data_class}}"),
               (rate("devsync_edge_refused_total", "instance, reason"), "{{instance}} refused {{reason}}")],
              "reqps"),
        panel("timeseries", "Upstream", "1 when the upstream accepts batches; failures per second.",
              [("max by (instance, upstream) (devsync_edge_upstream_up)", "{{instance}} {{upstream}} up"),
               (rate("devsync_edge_upstream_failures_total", "instance, upstream"), "{{instance}} {{upstream}} failures")],
              "short"),
        panel("timeseries", "Shedding alert and warning level", "Shedding alert (1 = losing data) and the highest "
              "fill warning level crossed.",
              [("max by (instance) (devsync_edge_shedding_alert)", "{{instance}} shedding"),
               ("max by (instance) (devsync_edge_fill_warning_level)", "{{instance}} warning level")], "short"),
    ])


DASHBOARDS = {"overview.json": overview, "sinks.json": sinks, "connectors.json": connectors, "edge.json": edge}


def render_all() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2) + "\n" for name, build in DASHBOARDS.items()}


if __name__ == "__main__":
    for name, text in render_all().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
