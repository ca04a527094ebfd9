"""The `sinks:` rule section: EHR endpoints, TLS, auth, timeouts, batching, backoff and charting.

    sinks:
      hl7v2: {host: ehr.example.org, port: 2575, connections: 4, ack_timeout_s: 10}
      pcd04: {host: alarm-manager.example.org, port: 2576}
      fhir:
        base_url: https://fhir.example.org/r4
        auth: {oauth2: {token_url: https://idp/token, client_id: devsync, client_secret_file: /run/secrets/fhir}}
      charting:
        - {sink: hl7v2, data_classes: [vital], interval_s: 300, change_threshold: 10}

Secrets never live in rule files: only the name of a file or an environment variable that holds them.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from hub.events import DataClass
from hub.rules.base import RuleModel


class TlsConfig(RuleModel):
    """TLS 1.2+ for a client connection; `cert_file`/`key_file` turn on mutual TLS."""

    ca_file: str | None = Field(None, description="CA bundle (PEM) that signed the server certificate; None = system CAs.")
    cert_file: str | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    key_file: str | None = Field(None, description="Client private key (PEM) for mutual TLS.")
    server_hostname: str | None = Field(None, description="Name to verify in the server certificate (default: host).")
    verify: bool = Field(True, description="Verify the server certificate and host name (never turn off in production).")

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together (mutual TLS needs both)")
        return self


class BackoffConfig(RuleModel):
    """Exponential backoff between retries of one message or bundle."""

    initial_s: float = Field(0.5, gt=0, description="First wait after a failure (s).")
    max_s: float = Field(30.0, gt=0, description="Longest wait between two attempts (s).")
    multiplier: float = Field(2.0, ge=1, description="Each further wait is the previous one times this.")


class MllpSinkConfig(RuleModel):
    """An HL7 v2 receiver over MLLP (the EHR interface engine or an alarm manager)."""

    host: str = Field(description="Receiver host name or address.")
    port: int = Field(ge=1, le=65535, description="Receiver TCP port.")
    tls: TlsConfig | None = Field(None, description="TLS settings; None = plain TCP.")
    connections: int = Field(4, ge=1, le=64, description="Parallel connections; patients are partitioned over them.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Time allowed to open a connection (s).")
    ack_timeout_s: float = Field(10.0, gt=0, description="Time to wait for the ACK of one message before resending (s).")
    max_observations_per_message: int = Field(
        20, ge=1, le=500, description="Observations of one patient and time that go into one ORU message."
    )
    batch_size: int = Field(500, ge=1, description="Buffered observations that trigger sending before flush().")
    max_batch_delay_s: float = Field(1.0, gt=0, description="Oldest buffered observation waits at most this long (s).")
    flush_timeout_s: float = Field(30.0, gt=0, description="flush() gives up (retriable SinkError) after this (s).")
    max_frame_bytes: int = Field(1_048_576, ge=1024, description="Larger ACK frames are treated as a broken peer.")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig, description="Wait between resends.")


class OAuth2ClientCredentials(RuleModel):
    """OAuth2 client-credentials grant (RFC 6749 section 4.4)."""

    token_url: str = Field(description="Token endpoint URL.")
    client_id: str = Field(description="Client id (not a secret).")
    client_secret_file: str | None = Field(None, description="File holding the client secret.")
    client_secret_env: str | None = Field(None, description="Environment variable holding the client secret.")
    scope: str | None = Field(None, description="Requested scope, e.g. system/Observation.write.")
    refresh_margin_s: float = Field(30.0, ge=0, description="Fetch a new token this long before expiry (s).")

    @model_validator(mode="after")
    def _one_secret_source(self) -> OAuth2ClientCredentials:
        if (self.client_secret_file is None) == (self.client_secret_env is None):
            raise ValueError("give exactly one of client_secret_file or client_secret_env")
        return self


class HttpAuth(RuleModel):
    """Exactly one way to authenticate: a static bearer token (file or env) or OAuth2 client credentials."""

    token_file: str | None = Field(None, description="File holding a bearer token (re-read when it changes).")
    token_env: str | None = Field(None, description="Environment variable holding a bearer token.")
    oauth2: OAuth2ClientCredentials | None = Field(None, description="OAuth2 client-credentials grant.")

    @model_validator(mode="after")
    def _exactly_one(self) -> HttpAuth:
        given = [n for n in ("token_file", "token_env", "oauth2") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of token_file, token_env, oauth2 (got: {', '.join(given) or 'none'})")
        return self


class FhirSinkConfig(RuleModel):
    """A FHIR R4 server taking transaction Bundles of Observations."""

    base_url: str = Field(description="FHIR base URL (the transaction Bundle is POSTed here).")
    tls: TlsConfig | None = Field(None, description="TLS settings for https:// base URLs.")
    auth: HttpAuth | None = Field(None, description="Authentication; None = anonymous.")
    batch_size: int = Field(100, ge=1, le=1000, description="Observations per transaction Bundle.")
    max_batch_delay_s: float = Field(2.0, gt=0, description="A partial Bundle is sent after this long (s).")
    connections: int = Field(2, ge=1, le=32, description="Bundles in flight at once (patients partitioned over them).")
    request_timeout_s: float = Field(30.0, gt=0, description="Time allowed for one HTTP request (s).")
    flush_timeout_s: float = Field(30.0, gt=0, description="flush() gives up (retriable SinkError) after this (s).")
    max_retry_after_s: float = Field(300.0, gt=0, description="Cap on a server's Retry-After (s).")
    backoff: BackoffConfig = Field(default_factory=BackoffConfig, description="Wait between retries on 5xx / errors.")


class FileSinkConfig(RuleModel):
    directory: str = Field("out", description="Output folder (demo layout: hl7v2/, fhir/).")


class ChartingPolicy(RuleModel):
    """How often a sink charts a metric: many EHRs cannot take every-second vitals.

    A value is charted when it is the first one, when `interval_s` has passed since the last
    charted value, when it changed by more than a threshold, or right after an alarm on the metric.
    Everything else is held back and recorded in the ledger with the reason.
    """

    sink: str = Field(description="Sink this policy applies to (hl7v2, fhir, ...).")
    data_classes: list[DataClass] = Field(description="Data classes the policy applies to.")
    metrics: list[str] = Field(default_factory=list, description="Only these metrics; empty = all.")
    interval_s: float = Field(300.0, ge=0, description="Chart one value per metric per this many seconds (0 = all).")
    change_threshold: float | None = Field(
        None, gt=0, description="Chart at once when the value moved more than this (in the sink's unit) since last charted."
    )
    change_threshold_ratio: float | None = Field(
        None, gt=0, description="Chart at once when the value moved more than this fraction (0.1 = 10 %) since last charted."
    )
    chart_on_alarm: bool = Field(True, description="Chart the next value at once after an alarm on this metric/patient.")
    require_valid: bool = Field(True, description="Hold back values flagged invalid, questionable, test or demo.")


class SinkRules(RuleModel):
    files: FileSinkConfig | None = Field(None, description="Write outputs to files (demo / debugging).")
    hl7v2: MllpSinkConfig | None = Field(None, description="HL7 v2 ORU^R01 (IHE PCD-01) over MLLP to the EHR.")
    pcd04: MllpSinkConfig | None = Field(None, description="IHE PCD-04 ORU^R40 alarm reports to an alarm manager.")
    fhir: FhirSinkConfig | None = Field(None, description="FHIR R4 transaction Bundles to the EHR.")
    charting: list[ChartingPolicy] = Field(default_factory=list, description="Charting policies per sink and data class.")
