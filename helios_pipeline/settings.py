"""The one place Helios reads configuration: environment variables prefixed ``HELIOS_``.

Every process (CLI, streaming services, Dagster code) calls :func:`get_settings`; nothing
else reads ``os.environ``. Bad values fail fast with a message naming the variable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "HELIOS_"


class SettingsError(ValueError):
    """A ``HELIOS_*`` variable holds a value Helios cannot use."""


class Settings(BaseSettings):
    """Typed configuration; field ``foo_bar`` is read from ``HELIOS_FOO_BAR``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    home: Path = Field(Path(".helios"), description="State directory: stack.json, logs, data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    keep: bool = Field(False, description="`helios demo` leaves the stack running")
    examples_dir: Path = Field(
        Path("../shared/openrtb-examples/valid"), description="OpenRTB fixtures the demo sends"
    )

    # --- where the services find their peers (set by `helios up` for its children) ---
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    profile_addr: str = "127.0.0.1:50051"

    # --- where services listen: loopback locally; 0.0.0.0 in a pod so Services reach it ---
    bind_host: str = "127.0.0.1"
    create_topics: bool = Field(True, description="consumers create missing topics at start")

    # --- ports the embedded stack binds on 127.0.0.1 ---
    kafka_port: int = Field(9092, ge=1, le=65535)
    redis_port: int = Field(6379, ge=1, le=65535)
    profile_port: int = Field(50051, ge=1, le=65535)
    gateway_port: int = Field(8080, ge=1, le=65535)
    bidder_metrics_port: int = Field(9101, ge=1, le=65535)
    auctioneer_metrics_port: int = Field(9102, ge=1, le=65535)
    profile_metrics_port: int = Field(9103, ge=1, le=65535)
    dagster_port: int = Field(3000, ge=1, le=65535)
    dagster: bool = Field(True, description="helios up also runs Dagster webserver + daemon")
    postgres: bool = Field(True, description="helios up starts an embedded PostgreSQL")
    postgres_dsn: str | None = Field(None, description="serving PostgreSQL (libpq DSN/URI)")

    # --- warehouse and outputs (default: under HELIOS_HOME) ---
    warehouse_path: Path | None = Field(None, description="default HOME/warehouse.duckdb")
    reports_dir: Path | None = Field(None, description="default HOME/reports")
    exports_dir: Path | None = Field(None, description="default HOME/exports")

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
    batch_wait_ms: int = Field(10, ge=1, le=1000, description="max wait to fill a batch")
    linger_ms: int = Field(20, ge=0)
    compression: Literal["none", "lz4", "zstd", "gzip", "snappy"] = "lz4"
    producer_buffer_kbytes: int = Field(32_768, ge=1024)
    consumer_prefetch_kbytes: int = Field(4_096, ge=1024)

    # --- gateway ---
    gateway_max_body_bytes: int = Field(1 << 20, ge=1024)
    gateway_ack_timeout_s: float = Field(5.0, gt=0)
    gateway_linger_ms: int = Field(2, ge=0)
    gateway_workers: int = Field(1, ge=1, le=32)
    gateway_queue_max_messages: int = Field(100_000, ge=1)

    # --- bidder ---
    bidder_group: str = "helios-bidder"
    bidder_batch_size: int = Field(500, ge=1, le=10_000)
    profile_timeout_ms: int = Field(250, ge=1)
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30.0, gt=0)

    # --- auctioneer ---
    auctioneer_group: str = "helios-auctioneer"
    auctioneer_batch_size: int = Field(500, ge=1, le=10_000)
    auction_strategy: Literal["market", "threshold"] = "market"
    market_seed: int = 42
    market_competitors: int = Field(3, ge=0, le=50)
    threshold_cpm: float = Field(0.5, ge=0)
    threshold_win_probability: float = Field(0.3, ge=0, le=1)

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

    def dlq(self, topic: str) -> str:
        """Dead-letter topic of ``topic`` (DESIGN.md: ``<topic>.dlq``)."""
        return f"{topic}.dlq"

    @property
    def all_topics(self) -> list[str]:
        base = [self.topic_requests, self.topic_responses, self.topic_outcomes]
        return base + [self.dlq(t) for t in base]


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "?"
        got = err.get("input")
        parts.append(f"{ENV_PREFIX}{field.upper()}={got!r}: {err['msg']}")
    return "; ".join(parts)


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment (plus explicit overrides, e.g. CLI flags)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once."""
    return load_settings()
