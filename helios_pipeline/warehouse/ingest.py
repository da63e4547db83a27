"""Exactly-once ingest from a Kafka topic into a warehouse table.

The read position lives in the warehouse, not in Kafka: rows and the next offsets are
written in one transaction. A run that dies before COMMIT leaves neither, so the rerun
reads the same messages again; a run that committed has moved the offsets, so nothing is
read twice. Rows are keyed (rid, imp_id) and inserted with ON CONFLICT DO NOTHING, so
at-least-once duplicates on the wire collapse too. Unparseable messages are recorded in
``ingest_rejects`` (same transaction) with their offset and reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from helios_pipeline.warehouse import schema, transforms

REJECTS = """
    CREATE TABLE IF NOT EXISTS ingest_rejects (
        topic VARCHAR NOT NULL, "partition" INTEGER NOT NULL, "offset" BIGINT NOT NULL,
        reason VARCHAR NOT NULL, rejected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, "partition", "offset"))"""

@dataclass
class IngestResult:
    topic: str
    table: str
    messages: int = 0
    inserted: int = 0
    rejected: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in schema.RAW_TABLES.values():
        con.execute(ddl).fetchall()
    con.execute(schema.OFFSETS).fetchall()
    con.execute(REJECTS).fetchall()


def stored_offsets(con: duckdb.DuckDBPyConnection, topic: str) -> dict[int, int]:
    got = con.execute(
        'SELECT "partition", next_offset FROM ingest_offsets WHERE topic = ?', [topic]
    ).fetchall()
    return dict(got)


def read_batch(
    consumer_conf: dict, topic: str, start: dict[int, int], max_messages: int, idle_s: float
) -> list:
    """Up to ``max_messages`` from the stored positions; stops when nothing new for idle_s.

    The end is decided by idleness, not by the broker's high watermark (wrong on Tansu).
    """
    c = Consumer(consumer_conf)
    try:
        md = c.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None:
            raise RuntimeError(f"topic {topic} does not exist")
        c.assign([TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in md.partitions])
        out: list = []
        last = time.monotonic()
        while len(out) < max_messages and time.monotonic() - last < idle_s:
            batch = c.consume(min(5000, max_messages - len(out)), timeout=0.2)
            for msg in batch:
                if msg.error() is None:
                    out.append(msg)
                elif msg.error().code() != KafkaError._PARTITION_EOF:
                    raise RuntimeError(f"reading {topic}: {msg.error()}")
            if batch:
                last = time.monotonic()
        return out
    finally:
        c.close()


def ingest_topic(
    con: duckdb.DuckDBPyConnection,
    consumer_conf: dict,
    topic: str,
    table: str,
    max_messages: int = 500_000,
    idle_s: float = 1.0,
    before_commit: Callable[[], None] | None = None,
) -> IngestResult:
    ensure_schema(con)
    result = IngestResult(topic, table)
    msgs = read_batch(consumer_conf, topic, stored_offsets(con, topic), max_messages, idle_s)
    if not msgs:
        return result
    # Only the bytes cross into DuckDB; parsing happens there (transforms.py).
    batch = pa.table({
        "partition": pa.array([m.partition() for m in msgs], pa.int32()),
        "offset": pa.array([m.offset() for m in msgs], pa.int64()),
        "value": pa.array([m.value() for m in msgs], pa.binary()),
    })
    result.messages = len(msgs)
    con.register("ingest_batch", batch)
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        con.execute(transforms.PARSE[table]).fetchall()
        before = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
        con.execute(f"INSERT INTO {table} {transforms.ROWS[table]} ON CONFLICT DO NOTHING"
                    ).fetchall()
        result.inserted = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] - before
        result.rejected = con.execute(
            "INSERT INTO ingest_rejects SELECT ?, \"partition\", \"offset\", reason, now() "
            "FROM parsed WHERE NOT ok ON CONFLICT DO NOTHING", [topic]).fetchall()[0][0]
        offsets = con.execute(
            "SELECT \"partition\", max(\"offset\") + 1 FROM ingest_batch GROUP BY 1").fetchall()
        result.offsets = dict(offsets)
        con.executemany(
            "INSERT INTO ingest_offsets VALUES (?, ?, ?, now()) ON CONFLICT (topic, \"partition\")"
            " DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
            [(topic, p, o) for p, o in offsets],
        )
        if before_commit is not None:
            before_commit()
        con.execute("COMMIT").fetchall()
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise
    finally:
        con.unregister("ingest_batch")
    return result
