"""Every topic the Kafka runtime uses, and creating or checking them idempotently.

Topics are created before any worker starts (`devsync kafka init`, and again by each
worker at start): a broker that auto-creates a topic picks its own partition count, and
faust refuses a table whose changelog has a different partition count from its source.
So the source topic of a table and its changelog always share `partitions`.

| topic                         | key        | cleanup  | what                                   |
|-------------------------------|------------|----------|----------------------------------------|
| <p>.events.raw                | stream     | delete   | connector output, stage 1 input        |
| <p>.events.normalized         | patient id | delete   | stage 1 output, stage 2 input          |
| <p>.alarms.raw                | stream     | delete   | the alarm lane: connectors' alarms     |
| <p>.alarms.normalized         | patient id | delete   | the alarm lane between the stages      |
| <p>.observations              | patient id | delete   | resolved readings and alarms -> sinks  |
| <p>.waveforms                 | patient id | delete   | waveform chunks (ordered, not resolved)|
| <p>.associations              | event id   | compact  | bindings, read in full by every worker |
| <p>.audit                     | patient id | delete   | one record per resolver decision       |
| <p>.dlq                       | event id   | delete   | original bytes + headers with reason   |
| <p>.parked                    | event id   | delete   | events waiting for a patient binding   |
| <app>-stage1-streams-changelog| stream     | compact  | stage 1 state per device stream        |
| <app>-stage2-patients-changelog| patient id| compact  | stage 2 state per patient              |
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from hub.errors import HubError
from hub.logs import get_logger
from hub.rules.kafka import KafkaRules

log = get_logger("kafka.topics")
STAGE1_TABLE = "stage1-streams"
STAGE2_TABLE = "stage2-patients"


@dataclass(frozen=True)
class TopicNames:
    raw: str
    normalized: str
    observations: str
    waveforms: str
    associations: str
    audit: str
    dlq: str
    parked: str
    stage1_changelog: str
    stage2_changelog: str
    alarms_raw: str  # the alarm lane: alarms skip the vitals' backlog (docs/kafka-runtime.md)
    alarms_normalized: str

    @classmethod
    def from_rules(cls, rules: KafkaRules) -> TopicNames:
        p, app = rules.prefix, rules.app_id
        return cls(f"{p}.events.raw", f"{p}.events.normalized", f"{p}.observations", f"{p}.waveforms",
                   f"{p}.associations", f"{p}.audit", f"{p}.dlq", f"{p}.parked",
                   f"{app}-{STAGE1_TABLE}-changelog", f"{app}-{STAGE2_TABLE}-changelog",
                   f"{p}.alarms.raw", f"{p}.alarms.normalized")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class EnsureReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


class TopicMismatchError(HubError):
    """An existing topic differs from its spec in a way that cannot be fixed in place."""


def topic_specs(rules: KafkaRules) -> list[TopicSpec]:
    names = TopicNames.from_rules(rules)
    n, r = rules.partitions, rules.replication

    def delete(retention_ms: int) -> dict[str, str]:
        return {"cleanup.policy": "delete", "retention.ms": str(retention_ms)}

    compact = {"cleanup.policy": "compact"}
    return [
        TopicSpec(names.raw, n, r, delete(rules.retention_ms)),
        TopicSpec(names.normalized, n, r, delete(rules.retention_ms)),
        TopicSpec(names.alarms_raw, n, r, delete(rules.retention_ms)),
        TopicSpec(names.alarms_normalized, n, r, delete(rules.retention_ms)),
        TopicSpec(names.observations, n, r, delete(rules.retention_ms)),
        TopicSpec(names.waveforms, n, r, delete(rules.retention_ms)),
        TopicSpec(names.associations, n, r, compact),
        TopicSpec(names.audit, n, r, delete(rules.audit_retention_ms)),
        TopicSpec(names.dlq, n, r, delete(rules.dlq_retention_ms)),
        TopicSpec(names.parked, n, r, delete(rules.dlq_retention_ms)),
        TopicSpec(names.stage1_changelog, n, r, compact),
        TopicSpec(names.stage2_changelog, n, r, compact),
    ]


def ensure_topics(admin_config: dict, specs: list[TopicSpec], timeout_s: float = 20.0) -> EnsureReport:
    """Create missing topics; check existing ones have the partition count of their spec."""
    admin = AdminClient(admin_config)
    try:
        metadata = admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise HubError(f"kafka {admin_config['bootstrap.servers']}: broker unreachable ({exc.args[0]})") from exc
    report = EnsureReport()
    missing = []
    for spec in specs:
        topic = metadata.topics.get(spec.name)
        if topic is None or topic.error is not None:
            missing.append(spec)
            continue
        check_partitions(spec, len(topic.partitions))
        report.existing.append(spec.name)
    if missing:
        create_topics(admin, missing, timeout_s, report)
    return report


def check_partitions(spec: TopicSpec, actual: int) -> None:
    if actual != spec.partitions:
        raise TopicMismatchError(
            f"topic {spec.name}: has {actual} partitions, the rules (kafka.partitions) say {spec.partitions}; "
            "a table's source and changelog must match: use another kafka.prefix/app_id or recreate the topic")


def create_topics(admin: AdminClient, specs: list[TopicSpec], timeout_s: float, report: EnsureReport) -> None:
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication, config=s.config) for s in specs], request_timeout=timeout_s)
    for spec in specs:
        try:
            futures[spec.name].result(timeout=timeout_s)
            report.created.append(spec.name)
            log.info("topic created", topic=spec.name, partitions=spec.partitions, **spec.config)
        except KafkaException as exc:
            err: KafkaError = exc.args[0]
            if err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise HubError(f"topic {spec.name}: cannot create ({err.str()})") from exc
            report.existing.append(spec.name)


def describe_configs(admin_config: dict, names: list[str], timeout_s: float = 10.0) -> dict[str, dict[str, str]]:
    """Current configuration of topics (for `devsync kafka init --check` output and tests)."""
    admin = AdminClient(admin_config)
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names])
    out = {}
    for resource, future in futures.items():
        out[resource.name] = {k: v.value for k, v in future.result(timeout=timeout_s).items()}
    return out
