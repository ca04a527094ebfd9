"""Connector listeners shared by many devices (MLLP, HTTP, MQTT). Owned by the connectors work."""

from __future__ import annotations

from pydantic import Field

from hub.rules.base import RuleModel


class MllpListener(RuleModel):
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(2575, ge=0, le=65535, description="TCP port (0 = pick a free one).")
    max_frame_bytes: int = Field(1_048_576, ge=1024, description="Larger frames are rejected with AR.")
    tls_cert: str | None = Field(None, description="Server certificate file (PEM) to enable TLS.")
    tls_key: str | None = Field(None, description="Server key file (PEM).")
    tls_client_ca: str | None = Field(None, description="CA file; when set, clients must present a certificate.")


class HttpListener(RuleModel):
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0 = pick a free one).")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Larger requests get 413.")
    token_file: str | None = Field(None, description="File holding the bearer token clients must send.")


class MqttSubscription(RuleModel):
    host: str = Field("127.0.0.1", description="Broker host.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port.")
    topics: list[str] = Field(default_factory=lambda: ["devsync/+/events"], description="Topic filters.")
    client_id: str = Field("devsync-hub", description="Persistent-session client id.")
    qos: int = Field(1, ge=0, le=2, description="Subscription QoS.")


class ConnectorRules(RuleModel):
    mllp: MllpListener | None = Field(None, description="HL7 v2 MLLP listener (ORU, ADT).")
    http: HttpListener | None = Field(None, description="HTTP ingest endpoint.")
    mqtt: MqttSubscription | None = Field(None, description="MQTT subscription.")
