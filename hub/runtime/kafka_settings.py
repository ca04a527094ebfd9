"""Connection settings of the Kafka runtime: where the brokers are and how to talk to them.

Rule-file numbers (partitions, batch sizes, timeouts) live in hub/rules/kafka.py; this
model holds what differs per deployment and may be secret (TLS files, SASL credentials),
taken from the command line or environment, and maps it onto the two clients in use:
confluent-kafka (librdkafka property names) and faust/aiokafka (faust App settings).

processing_guarantee:
  at_least_once (default, tested here): offsets are committed only after the outputs
    and the state changelog are flushed, so a crash replays some input. The stages'
    outputs are deterministic and keyed by event id, and stage 2 and the sinks dedupe by
    event id, so the replay changes nothing downstream (exactly-once effect).
  exactly_once: faust produces outputs, changelogs and offsets in one Kafka transaction.
    Needs a real Apache Kafka cluster (>= 2.5, 3 brokers, transaction.state.log settings).
    NOT TESTED HERE: the test broker (Tansu) rejects aiokafka's InitProducerId, so faust's
    transactional producer cannot start against it (see ../shared/FACTS.md).
"""

from __future__ import annotations

import ssl
import tempfile
from pathlib import Path
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from hub.rules.kafka import KafkaRules


class Guarantee(StrEnum):
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap: str = Field(pattern=r"^[^,\s]+:\d+(,[^,\s]+:\d+)*$", description="HOST:PORT[,HOST:PORT...]")
    processing_guarantee: Guarantee = Field(Guarantee.AT_LEAST_ONCE, description="See the module docstring.")
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    ssl_cafile: str | None = Field(None, description="CA bundle that signed the brokers' certificates.")
    ssl_certfile: str | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: str | None = Field(None, description="Client private key (mutual TLS).")
    sasl_mechanism: str | None = Field(None, pattern=r"^(PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)$")
    sasl_username: str | None = None
    sasl_password: str | None = Field(None, repr=False)
    client_id: str = Field("devsync", description="Client id shown in broker logs and quotas.")
    data_dir: str = Field(default_factory=lambda: str(Path(tempfile.gettempdir()) / "devsync-faust"),
                          description="faust's local directory (tables are in memory, backed by changelogs).")


def confluent_config(settings: KafkaSettings, rules: KafkaRules) -> dict:
    """librdkafka properties shared by the producer, consumers and AdminClient."""
    conf: dict = {"bootstrap.servers": settings.bootstrap, "client.id": settings.client_id,
                  "security.protocol": settings.security_protocol.value}
    if settings.ssl_cafile:
        conf["ssl.ca.location"] = settings.ssl_cafile
    if settings.ssl_certfile:
        conf["ssl.certificate.location"] = settings.ssl_certfile
    if settings.ssl_keyfile:
        conf["ssl.key.location"] = settings.ssl_keyfile
    if settings.sasl_mechanism:
        conf.update({"sasl.mechanism": settings.sasl_mechanism, "sasl.username": settings.sasl_username or "",
                     "sasl.password": settings.sasl_password or ""})
    return conf


def consumer_config(settings: KafkaSettings, rules: KafkaRules, group_id: str | None) -> dict:
    conf = {**confluent_config(settings, rules), "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "session.timeout.ms": int(rules.session_timeout_s * 1000),
            "heartbeat.interval.ms": int(rules.heartbeat_interval_s * 1000),
            "fetch.wait.max.ms": int(rules.fetch_max_wait_s * 1000)}
    conf["group.id"] = group_id or f"{rules.app_id}-reader"
    return conf


def faust_settings(settings: KafkaSettings, rules: KafkaRules) -> dict:
    """Keyword arguments for faust.App: the broker, security, guarantee and consumer timing."""
    conf = {
        "broker": ",".join(f"kafka://{hp}" for hp in settings.bootstrap.split(",")),
        "processing_guarantee": settings.processing_guarantee.value,
        "topic_partitions": rules.partitions,
        "topic_replication_factor": rules.replication,
        "topic_allow_declare": False,  # topics are created by `devsync kafka init` / ensure_topics
        "broker_session_timeout": rules.session_timeout_s,
        "broker_heartbeat_interval": rules.heartbeat_interval_s,
        "broker_commit_interval": rules.commit_interval_s,
        "broker_commit_every": rules.commit_every_records,
        "broker_max_poll_records": rules.batch_max_events,
        "broker_client_id": settings.client_id,
        "producer_acks": -1,
        "table_standby_replicas": 0,
        "web_enabled": False,
        "datadir": settings.data_dir,
        "consumer_auto_offset_reset": "earliest",
    }
    credentials = faust_credentials(settings)
    if credentials is not None:
        conf["broker_credentials"] = credentials
    return conf


def faust_credentials(settings: KafkaSettings):
    import faust

    context = None
    if settings.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=settings.ssl_cafile)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile)
    if settings.sasl_mechanism:
        if settings.sasl_mechanism == "PLAIN":
            return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                                         ssl_context=context)
        return faust.SASLCredentials(username=settings.sasl_username, password=settings.sasl_password,
                                     ssl_context=context, mechanism=settings.sasl_mechanism)
    if context is not None:
        return faust.SSLCredentials(context)
    return None
