"""Dagster resources: where Kafka, Redis and the warehouse are. Bound from ``EnvVar`` in
``definitions.py``; nothing connects until an asset asks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from ingest_services.common.kafka import reader_config
from ingest_services.settings import load_settings


class KafkaResource(dg.ConfigurableResource):
    bootstrap_servers: str
    topic_requests: str = "bid_requests"
    topic_responses: str = "bid_responses"
    topic_outcomes: str = "auction_outcomes"

    def reader_conf(self, client_id: str) -> dict:
        s = load_settings(kafka_bootstrap=self.bootstrap_servers)
        return reader_config(s, client_id)

    def topic(self, table: str) -> str:
        return {"bid_requests": self.topic_requests, "bid_responses": self.topic_responses,
                "auction_outcomes": self.topic_outcomes}[table]


class RedisResource(dg.ConfigurableResource):
    url: str

    def client(self):
        from ingest_services.profiles import store

        return store.connect(self.url)


class DuckDBWarehouse(dg.ConfigurableResource):
    """The warehouse file. One writer at a time (the ``duckdb_writer`` pool); connections
    are short-lived and retried briefly if another process holds the lock."""

    path: str
    lock_timeout_s: float = 60.0

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                con = duckdb.connect(self.path, read_only=read_only)
                break
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        try:
            yield con
        finally:
            con.close()


class PathsResource(dg.ConfigurableResource):
    """Where reports and analyst exports are written (HELIOS_REPORTS_DIR / _EXPORTS_DIR)."""

    reports_dir: str
    exports_dir: str
    serving_path: str = ""  # the API's snapshot; default <exports_dir>/../serving/serving.duckdb

    @property
    def serving(self) -> str:
        from pathlib import Path

        return self.serving_path or str(Path(self.exports_dir).parent / "serving"
                                        / "serving.duckdb")


class PostgresResource(dg.ConfigurableResource):
    """The serving database: tables several readers (API, dashboards) query at once."""

    dsn: str

    @contextmanager
    def connect(self):
        import psycopg2

        con = psycopg2.connect(self.dsn)
        try:
            yield con
        finally:
            con.close()
