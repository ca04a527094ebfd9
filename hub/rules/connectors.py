"""Connector listeners shared by many devices (MLLP, HTTP, MQTT). Owned by the connectors work."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hub.events import AlarmPriority
from hub.rules.base import RuleModel


class TlsSettings(RuleModel):
    """Shared TLS fields (TLS 1.2+). Certificate and key go together."""

    tls_cert: str | None = Field(None, description="Server certificate file (PEM) to enable TLS.")
    tls_key: str | None = Field(None, description="Server key file (PEM).")
    tls_client_ca: str | None = Field(None, description="CA file; when set, clients must present a certificate.")

    @model_validator(mode="after")
    def _cert_and_key(self):
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_cert and tls_key must be given together (both PEM files)")
        if self.tls_client_ca and not self.tls_cert:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        return self


class MllpListener(TlsSettings):
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(2575, ge=0, le=65535, description="TCP port (0 = pick a free one).")
    max_frame_bytes: int = Field(1_048_576, ge=1024, description="Larger frames are rejected with AR.")
    max_connections: int = Field(256, ge=1, description="Connections beyond this are closed at once.")
    idle_timeout_s: float | None = Field(
        None, gt=0, description="Close a connection that sent nothing for this long (s); none = keep open."
    )
    drain_timeout_s: float = Field(
        5.0, ge=0, description="On stop, how long messages in flight may take to be acknowledged (s)."
    )
    assume_utc_offset: str = Field(
        "+0000",
        pattern=r"^[+-](0\d|1[0-4])[0-5]\d$",
        description="UTC offset for HL7 times without one when MSH-7 has none either (+HHMM / -HHMM).",
    )
    bind_patient_from_pid: bool = Field(
        False,
        description="Take the patient binding from PID/PV1 of device messages (off: bindings come from ADT).",
    )
    default_alarm_priority: AlarmPriority = Field(
        AlarmPriority.MEDIUM, description="Priority of a PCD-04 alarm that states none (OBX-8 / facet .6)."
    )
    ack_application: str = Field("DEVSYNC", description="MSH-3 of the ACKs the hub sends.")
    ack_facility: str = Field("DEVSYNC", description="MSH-4 of the ACKs the hub sends.")


class HttpListener(TlsSettings):
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0 = pick a free one).")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger requests get 413.")
    token_file: str | None = Field(None, description="File holding the bearer token clients must send.")
    token_env: str | None = Field(
        "DEVSYNC_HTTP_TOKEN",
        description="Environment variable holding the bearer token (used when token_file is not set).",
    )
    allow_anonymous: bool = Field(
        False, description="Accept requests without any token (tests and demos only; ignores token_file/token_env)."
    )
    max_events_per_request: int = Field(10_000, ge=1, description="Events or observations per request, at most.")
    drain_timeout_s: float = Field(5.0, ge=0, description="On stop, how long requests in flight may take (s).")
    default_code_system: str = Field("MDC", description="Code system of device observations that name none.")

    @model_validator(mode="after")
    def _auth(self):
        if not self.allow_anonymous and not (self.token_file or self.token_env):
            raise ValueError("set token_file or token_env (bearer token), or allow_anonymous: true")
        return self


class MqttSubscription(RuleModel):
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    topics: list[str] = Field(default_factory=lambda: ["devsync/+/events"], description="Topic filters.")
    client_id: str = Field("devsync-hub", description="Persistent-session client id.")
    qos: int = Field(1, ge=0, le=2, description="Subscription QoS.")
    protocol_version: Literal["3.1.1", "5"] = Field(
        "3.1.1", description="MQTT version: 3.1.1 (clean_session false) or 5 (clean_start false + session expiry)."
    )
    session_expiry_s: int = Field(
        86_400, ge=0, description="MQTT 5: how long the broker keeps the session (and queued messages) offline (s)."
    )
    keepalive_s: int = Field(30, ge=5, le=65535, description="MQTT keepalive (s); a dead broker is noticed within 1.5x.")
    reconnect_max_s: float = Field(10.0, gt=0, description="Cap of the reconnect backoff (starts at 0.1 s) (s).")
    username: str | None = Field(None, description="Broker user name, if the broker requires one.")
    password_file: str | None = Field(None, description="File holding the broker password.")


class ConnectorRules(RuleModel):
    mllp: MllpListener | None = Field(None, description="HL7 v2 MLLP listener (ORU, ADT).")
    http: HttpListener | None = Field(None, description="HTTP ingest endpoint.")
    mqtt: MqttSubscription | None = Field(None, description="MQTT subscription.")
