"""The `kafka:` rules section: topics and processor tuning of the Kafka runtime.

Topic names are `<prefix>.<name>` (e.g. devsync.events.raw); the table changelogs are
`<app_id>-<table>-changelog`, as faust names them. Partitions bound parallelism: one
partition is processed by one worker at a time, so `partitions` is the most workers a
stage can use. docs/kafka-runtime.md explains how to size them.
"""

from __future__ import annotations

from pydantic import Field

from hub.rules.base import RuleModel

DAY_MS = 24 * 3600 * 1000


class KafkaRules(RuleModel):
    prefix: str = Field("devsync", pattern=r"^[A-Za-z0-9._-]+$",
                        description="Topic name prefix: topics are `<prefix>.events.raw`, `<prefix>.observations`, ...")
    app_id: str = Field("devsync-hub", pattern=r"^[A-Za-z0-9._-]+$",
                        description="Consumer group id of the workers; changelogs are `<app_id>-<table>-changelog`.")
    partitions: int = Field(4, ge=1, le=1024,
                            description="Partitions of every stream topic and changelog (the most workers per stage).")
    replication: int = Field(1, ge=1, le=7, description="Replication factor of every topic (3 on a real cluster).")
    retention_ms: int = Field(7 * DAY_MS, ge=60_000,
                              description="Retention of the event topics (raw, normalized, observations, waveforms).")
    audit_retention_ms: int = Field(30 * DAY_MS, ge=60_000, description="Retention of the audit topic.")
    dlq_retention_ms: int = Field(30 * DAY_MS, ge=60_000, description="Retention of the dead-letter and parked topics.")
    batch_max_events: int = Field(2000, ge=1,
                                  description="Most records a worker fetches at once (faust's broker_max_poll_records); "
                                              "each partition's share reaches its stage as one batch.")
    batch_queue: int = Field(4, ge=1, le=1000,
                             description="Fetched batches a stage may have waiting before fetching pauses "
                                         "(back-pressure).")
    fetch_max_wait_s: float = Field(0.02, gt=0, le=10,
                                    description="Longest the broker may hold a worker's fetch when no record is waiting "
                                                "(s); faust's own 1.5 s adds up to that to every stage.")
    tick_interval_s: float = Field(0.1, gt=0, le=60,
                                   description="How often reorder windows, resolution buckets and parking expire (s).")
    stage2_dedupe_events: int = Field(2048, ge=1,
                                      description="Event ids remembered per patient by stage 2 (replays after a crash).")
    session_timeout_s: float = Field(6.0, ge=1, le=300,
                                     description="Consumer session timeout: how fast a dead worker's partitions move (s).")
    heartbeat_interval_s: float = Field(1.0, gt=0, le=60, description="Consumer heartbeat interval (s).")
    commit_interval_s: float = Field(1.0, gt=0, le=60,
                                     description="How often processed offsets are committed (s). Each commit first "
                                                 "writes the state of every key touched since the last one, so a "
                                                 "longer interval costs less CPU and replays more after a crash.")
    commit_every_records: int = Field(1_000_000, ge=1000,
                                      description="Also commit after this many records were processed (faust's "
                                                  "broker_commit_every; its default of 10,000 means several "
                                                  "checkpoints a second under load).")
