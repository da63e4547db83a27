"""The one place Helios reads configuration: environment variables prefixed ``HELIOS_``.

Every process (CLI, streaming services, Dagster code) calls :func:`get_settings`; nothing
else reads ``os.environ``. Bad values fail fast with a message naming the variable.

The settings are split in groups (Kafka, gateway, bidder, auctioneer, profiles) and
``Settings`` is all of them plus the platform's own (embedded stack, warehouse, Dagster).
A streaming pod loads only its group, so it starts without the Dagster half installed or
configured. The module lives in ``ingest_services`` because dependencies run one way:
the Dagster half may import the services' modules, never the reverse.
"""

from __future__ import annotations

from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "HELIOS_"


S = TypeVar("S", bound="_Base")


class SettingsError(ValueError):
    """A ``HELIOS_*`` variable holds a value Helios cannot use."""


class _Base(BaseSettings):
    """What every process reads: where state lives, logging, the address it binds."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    home: Path = Field(Path(".helios"), description="State directory: stack.json, logs, data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, v: object) -> object:  # HELIOS_LOG_LEVEL=info is fine
        return v.upper() if isinstance(v, str) else v
    # where services listen: loopback locally; 0.0.0.0 in a pod so Services reach it
    bind_host: str = "127.0.0.1"


class KafkaSettings(_Base):
    """The broker, the topics and the client tuning every Kafka client shares."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    create_topics: bool = Field(True, description="consumers create missing topics at start")

    # --- topics ---
    topic_requests: str = "bid_requests"
    topic_responses: str = "bid_responses"
    topic_outcomes: str = "auction_outcomes"
    partitions: int = Field(6, ge=1, le=256)
    replication_factor: int = Field(1, ge=1)

    # --- Kafka client tuning (values that suit Tansu and Apache Kafka alike) ---
    session_timeout_ms: int = Field(6000, ge=1000)
    heartbeat_interval_ms: int = Field(500, ge=100)
    fetch_wait_max_ms: int = Field(100, ge=10)
    stream_fetch_wait_max_ms: int = Field(
        100, ge=10, description="fetch.wait.max.ms of the bidder's and auctioneer's consumers")
    batch_wait_ms: int = Field(10, ge=1, le=1000, description="max wait to fill a batch")
    linger_ms: int = Field(20, ge=0)
    compression: Literal["none", "lz4", "zstd", "gzip", "snappy"] = "lz4"
    producer_buffer_kbytes: int = Field(32_768, ge=1024)
    # every producer's queue bound (named for the gateway, where it matters most)
    gateway_queue_max_messages: int = Field(100_000, ge=1)
    consumer_prefetch_kbytes: int = Field(4_096, ge=1024)

    # --- transactional read-process-write (ingest_services/common/transactions.py) ---
    kafka_transactions: bool = Field(
        False, description="bidder and auctioneer commit outputs and consumed offsets in one "
                           "Kafka transaction (exactly-once on the wire on Apache Kafka; the "
                           "embedded broker shows aborted records to read_committed readers)")
    kafka_gap_wait_ms: int = Field(
        2000, ge=0, le=60_000,
        description="a consumer handed records past a gap in a partition's offsets re-reads "
                    "from the gap for up to this long before accepting it (the embedded "
                    "broker can serve a later batch before an earlier one is stored: "
                    "common/offset_gaps.py); 0 = off; off with kafka_transactions")

    # --- secured Kafka (issue #8): applied to every client by common/kafka.py ---
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="security.protocol of every Kafka client")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, validate_default=True,
        description="required with SASL_SSL / SASL_PLAINTEXT")
    kafka_sasl_username: str | None = Field(None, validate_default=True,
                                            description="required with SASL_*")
    kafka_sasl_password: SecretStr = Field(
        SecretStr(""), validate_default=True,
        description="required with SASL_*; from a Secret, never logged")
    kafka_ssl_ca_location: Path | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates "
                          "(SSL / SASL_SSL); unset: the system's CA store")
    kafka_ssl_certificate_location: Path | None = Field(
        None, description="client certificate (PEM) for mutual TLS; with the key")
    kafka_ssl_key_location: Path | None = Field(
        None, validate_default=True, description="client private key (PEM) for mutual TLS")
    kafka_ssl_key_password: SecretStr = Field(
        SecretStr(""), description="password of an encrypted client key; never logged")
    kafka_ssl_check_hostname: bool = Field(
        True, description="verify the broker's host name against its certificate")

    @field_validator("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_ssl_ca_location",
                     "kafka_ssl_certificate_location", "kafka_ssl_key_location",
                     mode="before")
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:  # a chart renders unset values as ""
        if isinstance(v, str):
            v = v.strip()
            return v or None
        return v

    @field_validator("kafka_sasl_mechanism", mode="before")
    @classmethod
    def _mechanism_any_case(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")
    @classmethod
    def _sasl_needs_all_three(cls, v: object, info: ValidationInfo) -> object:
        protocol = info.data.get("kafka_security_protocol")
        if protocol is None:  # itself invalid: reported on its own
            return v
        given = bool(v.get_secret_value() if isinstance(v, SecretStr) else v)
        if protocol.startswith("SASL_") and not given:
            what = ("PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                    if info.field_name == "kafka_sasl_mechanism" else "a value")
            raise ValueError(f"required with HELIOS_KAFKA_SECURITY_PROTOCOL={protocol}: "
                             f"set it to {what}")
        if given and not protocol.startswith("SASL_"):
            raise ValueError(f"only used with HELIOS_KAFKA_SECURITY_PROTOCOL=SASL_SSL or "
                             f"SASL_PLAINTEXT (it is {protocol}): set that too, or unset this")
        return v

    @field_validator("kafka_ssl_ca_location", "kafka_ssl_certificate_location",
                     "kafka_ssl_key_location")
    @classmethod
    def _tls_file(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        protocol = info.data.get("kafka_security_protocol")
        if v is not None:
            if protocol is not None and protocol not in ("SSL", "SASL_SSL"):
                raise ValueError(f"only used with HELIOS_KAFKA_SECURITY_PROTOCOL=SSL or "
                                 f"SASL_SSL (it is {protocol}): set that too, or unset this")
            if not v.is_file():
                raise ValueError(f"no readable file at {v} (mount the Secret holding it "
                                 f"there, or fix the path)")
        if info.field_name == "kafka_ssl_key_location":
            cert = info.data.get("kafka_ssl_certificate_location")
            if (cert is None) != (v is None) and "kafka_ssl_certificate_location" in info.data:
                raise ValueError("mutual TLS needs both HELIOS_KAFKA_SSL_CERTIFICATE_LOCATION "
                                 "and HELIOS_KAFKA_SSL_KEY_LOCATION: set both, or neither")
        return v

    def dlq(self, topic: str) -> str:
        """Dead-letter topic of ``topic`` (DESIGN.md: ``<topic>.dlq``)."""
        return f"{topic}.dlq"

    @property
    def all_topics(self) -> list[str]:
        base = [self.topic_requests, self.topic_responses, self.topic_outcomes]
        return base + [self.dlq(t) for t in base]


class GatewaySettings(KafkaSettings):
    """`helios serve gateway`."""

    gateway_port: int = Field(8080, ge=1, le=65535)
    gateway_max_body_bytes: int = Field(1 << 20, ge=1024)
    gateway_ack_timeout_s: float = Field(5.0, gt=0)
    gateway_linger_ms: int = Field(2, ge=0)
    gateway_workers: int = Field(
        1, ge=0, le=32, description="worker processes; 0: one per usable core, at most 8")
    gateway_server: Literal["uvicorn", "granian"] = Field(
        "uvicorn", description="HTTP server in front of the gateway app")
    gateway_metrics_dir: str = Field(
        "", description="prometheus multiprocess directory with >1 worker; empty: a temp dir")

    # --- security and limits (issue #9; ingest_services/common/auth.py) ---
    gateway_api_keys: SecretStr = Field(
        SecretStr(""), description="comma-separated keys for /bid and /bids; empty: no auth")
    gateway_rate_per_key: float = Field(
        0.0, ge=0, description="requests/s per API key and worker process; 0: no limit")
    gateway_max_batch_lines: int = Field(10_000, ge=1, description="NDJSON lines per /bids")


class BidderSettings(KafkaSettings):
    """`helios serve bidder`: its consumer group and the profile path it enriches over."""

    profile_addr: str = "127.0.0.1:50051"
    bidder_metrics_port: int = Field(9101, ge=1, le=65535)
    bidder_group: str = "helios-bidder"
    bidder_batch_size: int = Field(500, ge=1, le=10_000)
    profile_timeout_ms: int = Field(250, ge=1)
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)


class AuctioneerSettings(KafkaSettings):
    """`helios serve auctioneer`: its consumer group and the market model."""

    auctioneer_metrics_port: int = Field(9102, ge=1, le=65535)
    auctioneer_group: str = "helios-auctioneer"
    auctioneer_batch_size: int = Field(500, ge=1, le=10_000)
    auction_strategy: Literal["market", "threshold"] = "market"
    market_seed: int = 42
    market_competitors: int = Field(3, ge=0, le=50)
    threshold_cpm: float = Field(0.5, ge=0)
    threshold_win_probability: float = Field(0.3, ge=0, le=1)


class ProfileSettings(_Base):
    """`helios serve profiles`: the gRPC port and the Redis it reads."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    profile_port: int = Field(50051, ge=1, le=65535)
    profile_metrics_port: int = Field(9103, ge=1, le=65535)


class ApiSettings(_Base):
    """`helios serve api`: the analytics API and dashboard, reading the serving snapshot."""

    api_port: int = Field(8090, ge=1, le=65535)
    serving_path: Path | None = Field(None, description="default HOME/serving/serving.duckdb")
    api_memory_mb: int = Field(16, ge=16, description="DuckDB buffer limit of the API")
    api_cache_entries: int = Field(1024, ge=0, description="answers cached per snapshot; 0: off")

    # --- security and limits (issue #9; ingest_services/common/auth.py) ---
    api_keys: SecretStr = Field(
        SecretStr(""), description="comma-separated keys for /api/*; empty: no auth")
    api_rate_per_key: float = Field(
        0.0, ge=0, description="requests/s per API key and process; 0: no limit")
    api_max_days: int = Field(366, ge=1, description="longest date_from..date_to range, days")

    @property
    def serving(self) -> Path:
        return self.serving_path or self.home / "serving" / "serving.duckdb"


class Settings(GatewaySettings, BidderSettings, AuctioneerSettings, ProfileSettings,
               ApiSettings):
    """Everything: the CLI, the embedded stack and the Dagster code location read this.

    Field ``foo_bar`` is read from ``HELIOS_FOO_BAR``. A streaming service reads only its
    own group above, so a bad value meant for another component cannot stop it.
    """

    keep: bool = Field(False, description="`helios demo` leaves the stack running")
    examples_dir: Path = Field(
        Path("../shared/openrtb-examples/valid"), description="OpenRTB fixtures the demo sends"
    )

    # --- ports the embedded stack binds on 127.0.0.1 ---
    kafka_port: int = Field(9092, ge=1, le=65535)
    redis_port: int = Field(6379, ge=1, le=65535)
    dagster_port: int = Field(3000, ge=1, le=65535)
    dagster: bool = Field(True, description="helios up also runs Dagster webserver + daemon")
    postgres: bool = Field(True, description="helios up starts an embedded PostgreSQL")
    durable_broker: bool = Field(
        False, description="helios up keeps the broker's data on disk (Tansu s3:// on "
                           "SeaweedFS under HOME/broker-s3): a broker restart loses nothing")
    postgres_dsn: str | None = Field(None, description="serving PostgreSQL (libpq DSN/URI)")

    # --- warehouse and outputs (default: under HELIOS_HOME) ---
    warehouse_path: Path | None = Field(None, description="default HOME/warehouse.duckdb")
    warehouse_backend: Literal["duckdb", "postgres"] = Field(
        "duckdb", description="duckdb (embedded file) or postgres (HELIOS_WAREHOUSE_DSN)")
    warehouse_dsn: str | None = Field(None, description="PostgreSQL warehouse (libpq URI)")
    reports_dir: Path | None = Field(None, description="default HOME/reports")
    exports_dir: Path | None = Field(None, description="default HOME/exports")
    export_refresh_s: float = Field(300.0, ge=0, description="exports follow ingest, seconds")

    # --- the Dagster code location ---
    partitions_start: date | None = Field(
        None, description="first day of the daily partitions (YYYY-MM-DD); helios up sets it "
                          "to the first day of data")
    stats_refresh_s: float = Field(300.0, ge=0, description="today's daily_stats follow "
                                                            "ingest, seconds")
    alert_webhook_url: str | None = Field(
        None, description="run and check failures are posted here (Slack-compatible JSON)")

    @field_validator("alert_webhook_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (a Slack incoming webhook, "
                             "for instance), or unset to disable alerts")
        return v or None

    # --- embedded stack: how many of each consumer (one consumer group each) ---
    bidder_replicas: int = Field(1, ge=1, le=16, description="bidder processes helios up runs")
    auctioneer_replicas: int = Field(1, ge=1, le=16,
                                     description="auctioneer processes helios up runs")

    # --- embedded stack supervision ---
    restart_max: int = Field(5, ge=0, description="restarts allowed within restart_window_s")
    restart_window_s: float = Field(60.0, gt=0)

    @property
    def warehouse(self) -> Path:
        return self.warehouse_path or self.home / "warehouse.duckdb"

    @property
    def reports(self) -> Path:
        return self.reports_dir or self.home / "reports"

    @property
    def exports(self) -> Path:
        return self.exports_dir or self.home / "exports"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def postgres_dir(self) -> Path:
        return self.home / "postgres"

    @property
    def stack_file(self) -> Path:
        return self.home / "stack.json"


# What each `helios serve` process reads (a pod needs only its own group to start).
SERVICE_SETTINGS: dict[str, type[_Base]] = {
    "gateway": GatewaySettings,
    "bidder": BidderSettings,
    "auctioneer": AuctioneerSettings,
    "profiles": ProfileSettings,
}


def _describe(exc: ValidationError, given: frozenset[str] = frozenset()) -> str:
    """Name each bad value the way the user gave it: a command-line flag (with the variable
    it stands for) or a ``HELIOS_*`` variable, and say how to fix it."""
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        got = err.get("input")
        var = f"{ENV_PREFIX}{field.upper()}"
        info = Settings.model_fields.get(field)
        secret = info is not None and info.annotation is SecretStr
        if secret:
            got = "<hidden>"  # a password or key is never printed, not even a wrong one
        default = ("" if info is None or info.default is None or secret
                   else f" (default {info.default})")
        if field in given:
            flag = f"--{field.replace('_', '-')}"
            where, fix = f"{flag} {got} (instead of {var})", f"pass a valid {flag}"
        else:
            where = f"{var} (not set)" if got is None else f"{var}={got!r}"
            fix = f"set {var} to a valid value or unset it{default}; see docs/operations.md"
        parts.append(f"{where}: {err['msg']} (fix: {fix})")
    return "; ".join(parts)


def load_settings(group: type[S] = Settings, **overrides: object) -> S:  # type: ignore[assignment]
    """Build one group of settings from the environment (plus explicit overrides, e.g. CLI
    flags). Only the group's own variables are read and checked."""
    try:
        return group(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, frozenset(overrides))) from None


@lru_cache(maxsize=8)
def get_settings(group: type[S] = Settings) -> S:  # type: ignore[assignment]
    """Process-wide settings of one group, read once."""
    return load_settings(group)
