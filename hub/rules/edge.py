"""Edge gateway settings (store-and-forward buffer). Owned by the edge work.

Every number the gateway uses lives here with a default; docs/edge-gateway.md explains
what each one trades off (durability, quota, shedding, replay, backoff, sizing).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from hub.events import DataClass
from hub.rules.base import RuleModel


class Durability(StrEnum):
    """SQLite `synchronous` level used with WAL (never OFF)."""

    FULL = "full"  # fsync the WAL on every commit: an acknowledged event survives power loss
    NORMAL = "normal"  # fsync at checkpoints only: survives process crash; power loss may drop the last commits


class ShedPolicy(StrEnum):
    SHED_OLDEST = "shed-oldest"  # delete the oldest rows of `shed_order` classes first, never alarms
    REFUSE = "refuse"  # shed nothing: refuse new events (back-pressure to the connectors)


# Never shed: alarms (clinical safety) and associations (patient binding).
NEVER_SHED = frozenset({DataClass.ALARM, DataClass.ASSOCIATION})

DEFAULT_RATES: dict[DataClass, float] = {  # events/s per device, worst case sustained
    DataClass.ALARM: 0.05,  # an alarm start/update/end every 20 s, for hours
    DataClass.VITAL: 2.0,  # 10 parameters every 5 s
    DataClass.TREND: 0.2,
    DataClass.WAVEFORM: 4.0,  # four 1-s chunks per second (e.g. ECG II, V, pleth, resp)
    DataClass.SETTING: 0.5,
    DataClass.SPOT_CHECK: 0.01,
    DataClass.STATUS: 0.05,
    DataClass.ASSOCIATION: 0.001,
}

DEFAULT_EVENT_BYTES: dict[DataClass, int] = {
    DataClass.ALARM: 950,
    DataClass.VITAL: 820,
    DataClass.TREND: 820,
    DataClass.WAVEFORM: 1900,  # 1 s of one lead at 250 Hz
    DataClass.SETTING: 820,
    DataClass.SPOT_CHECK: 820,
    DataClass.STATUS: 800,
    DataClass.ASSOCIATION: 900,
}


class EdgeRules(RuleModel):
    gateway_id: str = Field("edge-1", description="This gateway's id (devices[].gateway).")
    # --- durability and batching ---
    durability: Durability = Field(
        Durability.FULL,
        description="SQLite synchronous level with WAL: 'full' (an acknowledged event survives power loss) or "
        "'normal' (survives a process crash; power loss may lose the last commits, never corrupts).",
    )
    append_batch_max_events: int = Field(500, ge=1, description="Most events committed in one append transaction.")
    append_batch_max_wait_s: float = Field(
        0.0, ge=0, le=1,
        description="Extra wait to gather more events into one commit (s). 0: commit as soon as the previous "
        "commit ends; events arriving during a commit share the next one (group commit).",
    )
    # --- capacity ---
    quota_bytes: int | None = Field(
        2 * 1024**3, ge=1024, description="Most payload bytes held in the buffer (null = no byte quota)."
    )
    quota_rows: int | None = Field(None, ge=1, description="Most events held in the buffer (null = no row quota).")
    fill_warning_levels: list[float] = Field(
        default_factory=lambda: [0.5, 0.8, 0.95],
        description="Fill ratios (of the quota) at which a warning is logged and the fill-level metric is raised.",
    )
    shed_policy: ShedPolicy = Field(
        ShedPolicy.SHED_OLDEST, description="What to do when full: 'shed-oldest' (never alarms) or 'refuse'."
    )
    shed_order: list[DataClass] = Field(
        default_factory=lambda: [
            DataClass.WAVEFORM, DataClass.TREND, DataClass.VITAL, DataClass.SPOT_CHECK, DataClass.STATUS,
            DataClass.SETTING,
        ],
        description="Data classes shed when full, first to last, oldest rows first. Alarms and associations "
        "are never shed; when only those remain the gateway refuses new events (back-pressure).",
    )
    compact_interval_s: float = Field(
        60.0, gt=0, description="How often delivered rows' pages are returned and the WAL truncated (s)."
    )
    # --- forwarding ---
    forward_batch_events: int = Field(1000, ge=1, description="Most events sent upstream per batch.")
    ack_timeout_s: float = Field(
        30.0, gt=0, description="How long a batch may wait for the upstream's acknowledgements before it is resent (s)."
    )
    replay_age_s: float = Field(
        30.0, gt=0, description="Events older than this when forwarded are marked replayed (provenance.replayed)."
    )
    backoff_initial_s: float = Field(0.5, gt=0, description="First reconnect delay after an upstream failure (s).")
    backoff_max_s: float = Field(30.0, gt=0, description="Longest reconnect delay (s).")
    backoff_multiplier: float = Field(2.0, ge=1, description="Delay growth per failed attempt.")
    # --- upstream naming ---
    kafka_topic_prefix: str = Field("devsync.", description="Kafka topic prefix; events go to PREFIX + 'events.raw'.")
    kafka_partitions: int = Field(6, ge=1, description="Partitions used when the gateway creates the raw topic.")
    kafka_replication_factor: int = Field(1, ge=1, description="Replication factor when creating the raw topic (3 in production).")
    kafka_client_config: dict[str, str] = Field(
        default_factory=dict,
        description="Extra librdkafka settings for the producer and admin client, e.g. security.protocol: SSL, "
        "ssl.ca.location, ssl.certificate.location, ssl.key.location (mutual TLS to the hub).",
    )
    mqtt_topic_prefix: str = Field("devsync/edge", description="MQTT topic is PREFIX/<gateway_id>/events (QoS 1).")
    mqtt_tls_ca: str | None = Field(None, description="CA file (PEM); when set the MQTT upstream uses TLS 1.2+.")
    mqtt_tls_cert: str | None = Field(None, description="Client certificate (PEM) for mutual TLS to the broker.")
    mqtt_tls_key: str | None = Field(None, description="Client key (PEM) for mutual TLS to the broker.")
    # --- health ---
    health_host: str = Field("127.0.0.1", description="Bind address of /healthz and /metrics.")
    health_port: int = Field(9465, ge=0, le=65535, description="Port of /healthz and /metrics (0 = off).")
    # --- sizing ---
    sizing_rates: dict[DataClass, float] = Field(
        default_factory=lambda: dict(DEFAULT_RATES),
        description="Worst-case events/s per device per data class, used when neither device_type_rates nor a "
        "polling profile says otherwise.",
    )
    device_type_rates: dict[str, dict[DataClass, float]] = Field(
        default_factory=dict, description="Worst-case events/s per device type and data class (overrides)."
    )
    events_per_poll: int = Field(
        6, ge=1, description="Events one poll yields; polled classes (profile poll_interval_s) get this / interval."
    )
    event_bytes: dict[DataClass, int] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_BYTES), description="Serialized event size per data class (bytes)."
    )
    row_overhead_bytes: int = Field(
        150, ge=0, description="SQLite bytes per row beyond the payload (row header, index, page slack); the bench "
        "measured edge_bytes_per_event - edge_payload_bytes_per_event = 131 B (8 KiB pages).",
    )
    disk_headroom: float = Field(0.25, ge=0, description="Extra disk on top of the worst case (WAL, free pages).")

    @field_validator("shed_order")
    @classmethod
    def _never_shed(cls, value: list[DataClass]) -> list[DataClass]:
        bad = [c.value for c in value if c in NEVER_SHED]
        if bad:
            raise ValueError(f"{', '.join(bad)} may never be shed (allowed: classes other than alarm, association)")
        return value

    @field_validator("fill_warning_levels")
    @classmethod
    def _levels(cls, value: list[float]) -> list[float]:
        if any(not 0 < v <= 1 for v in value):
            raise ValueError(f"levels are fill ratios in (0, 1], got {value}")
        return sorted(value)

    @model_validator(mode="after")
    def _backoff(self) -> EdgeRules:
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) must be >= backoff_initial_s ({self.backoff_initial_s})")
        return self

    @property
    def kafka_topic(self) -> str:
        return f"{self.kafka_topic_prefix}events.raw"

    @property
    def mqtt_topic(self) -> str:
        return f"{self.mqtt_topic_prefix}/{self.gateway_id}/events"
