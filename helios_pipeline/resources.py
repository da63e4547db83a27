"""Dagster resources: where Kafka, Redis and the warehouse are. Bound from ``EnvVar`` in
``definitions.py``; nothing connects until an asset asks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from confluent_kafka import Consumer

from helios_pipeline.warehouse.backend import (
    DuckDBBackend,
    PostgresBackend,
    Warehouse,
    check_backend,
)
from helios_pipeline.warehouse.duckdb_file import connect_waiting
from ingest_services.common.kafka import high_watermarks, reader_config
from ingest_services.common.offset_gaps import gap_wait_s
from ingest_services.settings import load_settings


class KafkaResource(dg.ConfigurableResource):
    bootstrap_servers: str
    topic_requests: str = "bid_requests"
    topic_responses: str = "bid_responses"
    topic_outcomes: str = "auction_outcomes"

    def reader_conf(self, client_id: str) -> dict:
        s = load_settings(kafka_bootstrap=self.bootstrap_servers)
        return reader_config(s, client_id)

    def watermarks(self, topic: str) -> dict[int, int]:
        """High watermark per partition ({} if the topic does not exist; see
        :func:`~ingest_services.common.kafka.high_watermarks`)."""
        c = Consumer(self.reader_conf(f"dagster-watermarks-{topic}"))
        try:
            md = c.list_topics(topic, timeout=5).topics.get(topic)
            if md is None or md.error is not None:
                return {}
            found = high_watermarks(c, [(topic, p) for p in md.partitions], timeout=5)
            return {p: high for (_t, p), high in found.items()}
        finally:
            c.close()

    def gap_wait_s(self) -> float:
        """How long the ingest reader re-reads an offset gap (common/offset_gaps.py)."""
        return gap_wait_s(load_settings(kafka_bootstrap=self.bootstrap_servers))

    def topic(self, table: str) -> str:
        return {"bid_requests": self.topic_requests, "bid_responses": self.topic_responses,
                "auction_outcomes": self.topic_outcomes}[table]


class RedisResource(dg.ConfigurableResource):
    url: str

    def client(self):
        from ingest_services.profiles import store

        return store.connect(self.url)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse, on the backend HELIOS_WAREHOUSE_BACKEND chooses: ``duckdb`` (the file
    at ``path``, the embedded default) or ``postgres`` (``dsn``; ``pg_schema`` optionally
    puts the tables in their own schema). Writers run one at a time (the ``duckdb_writer``
    pool; on PostgreSQL also an advisory lock, warehouse/backend.py); connections are
    short-lived; a DuckDB file held by another process is retried briefly.

    ``open()`` is the backend-neutral connection (warehouse/backend.py) the warehouse code
    takes; ``reader()`` a DuckDB connection on which the given tables can be read, for code
    written in DuckDB SQL (report, exports, snapshot); ``connect()`` the DuckDB file itself.
    """

    path: str = ""
    backend: str = "duckdb"
    dsn: str = ""
    pg_schema: str = ""
    lock_timeout_s: float = 60.0

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.backend != "duckdb":
            raise ValueError(f"the warehouse is on {self.backend} (HELIOS_WAREHOUSE_BACKEND): "
                             "use WarehouseResource.open(), not connect()")
        con = connect_waiting(self.path, read_only=read_only, wait_s=self.lock_timeout_s,
                              pause_s=0.5)
        try:
            yield con
        finally:
            con.close()

    @contextmanager
    def open(self, read_only: bool = False) -> Iterator[Warehouse]:
        check_backend(self.backend, self.dsn)
        if self.backend == "duckdb":
            with self.connect(read_only) as con:
                yield DuckDBBackend(con)
            return
        db = PostgresBackend(self.dsn, self.pg_schema or None)
        try:
            yield db
        finally:
            db.close()

    @contextmanager
    def reader(self, wanted: dict[str, str | None]) -> Iterator[duckdb.DuckDBPyConnection]:
        """A DuckDB connection on which each table of ``wanted`` (name → SQL filter or None)
        is readable by its name: the DuckDB file read-only, or on PostgreSQL an in-memory
        DuckDB holding those tables' filtered rows."""
        with self.open(read_only=True) as db:
            for table, where in wanted.items():
                db.to_local(table, where)
            yield db.local


DuckDBWarehouse = WarehouseResource  # the name the assets and tests have always used


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
