"""Exactly-once ingest from a Kafka topic into a warehouse table.

The read position lives in the warehouse, not in Kafka: rows and the next offsets are
written in one transaction. A run that dies before COMMIT leaves neither, so the rerun
reads the same messages again; a run that committed has moved the offsets, so nothing is
read twice. Rows are keyed (rid, imp_id) and only the keys the table does not hold yet are
inserted (``insert_new``), so at-least-once duplicates on the wire collapse too.
Unparseable messages are recorded in ``ingest_rejects`` (same transaction) with their
offset and reason.

``outcomes`` is kept in the same transaction too: each batch replaces only the outcomes rows
of the (rid, imp_id) pairs it inserted (see ``refresh_outcomes``), so its cost follows the
batch, not the history, and a crash anywhere leaves rows, outcomes and offsets consistent.

No table keyed (rid, imp_id) has a primary key (issue #6: an ART index over the history made
inserts and checkpoints slower as it grew). Uniqueness is explicit instead, and stays cheap
because rids sort by time: a batch's keys are looked up with ``rid BETWEEN lo AND hi``, a
range DuckDB answers from the row groups whose min/max rid overlap it — the recent ones.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from helios_pipeline.warehouse import schema, transforms


@dataclass
class IngestResult:
    topic: str
    table: str
    messages: int = 0
    inserted: int = 0
    rejected: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset


def _has(con: duckdb.DuckDBPyConnection, table: str, primary_key: bool = False) -> bool:
    view = "duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY' AND" if primary_key \
        else "duckdb_tables() WHERE"
    return con.execute(
        f"SELECT count(*) FROM {view} table_name = ? AND database_name = current_database() "
        "AND schema_name = current_schema()", [table]).fetchall()[0][0] > 0


def _drop_key(con: duckdb.DuckDBPyConnection, table: str, ddl: str) -> None:
    """Rebuild ``table`` from a warehouse of an older version without its primary key (DuckDB
    cannot drop one), rows in (rid, imp_id) order — a one-off, in one transaction."""
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        con.execute(f"ALTER TABLE {table} RENAME TO {table}_keyed").fetchall()
        con.execute(ddl).fetchall()
        con.execute(f"INSERT INTO {table} SELECT * FROM {table}_keyed ORDER BY rid, imp_id"
                    ).fetchall()
        con.execute(f"DROP TABLE {table}_keyed").fetchall()
        con.execute("COMMIT").fetchall()
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for table, ddl in schema.RAW_TABLES.items():
        if _has(con, table, primary_key=True):
            _drop_key(con, table, ddl)
        con.execute(ddl).fetchall()
    con.execute(schema.OFFSETS).fetchall()
    con.execute(schema.REJECTS).fetchall()
    ensure_outcomes(con)


def ensure_outcomes(con: duckdb.DuckDBPyConnection) -> bool:
    """Make sure ``outcomes`` and the pending tables exist; a warehouse from an older version
    (``outcomes`` built by CREATE TABLE AS without pending tables, or with a primary key) or
    without them is rebuilt once. True when it rebuilt."""
    if _has(con, "outcomes") and not _has(con, "outcomes", primary_key=True) and all(
            _has(con, p) for p in schema.PENDING.values()):
        return False
    rebuild_outcomes(con)
    return True


def rebuild_outcomes(con: duckdb.DuckDBPyConnection) -> int:
    """Recompute ``outcomes`` and the pending tables from all raw rows, in one transaction
    (a one-off: migration, repair, tests). Returns the number of outcomes rows."""
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        con.execute(schema.OUTCOMES_REPLACE).fetchall()
        n = con.execute(f"INSERT INTO outcomes {schema.outcomes_select()} ORDER BY rid, imp_id"
                        ).fetchall()[0][0]
        con.execute("CREATE OR REPLACE TEMP TABLE settled_keys AS "
                    + schema.settled("auction_outcomes", {t: t for t in schema.RAW_TABLES})
                    ).fetchall()
        for raw, pending in schema.PENDING.items():
            con.execute(f"CREATE OR REPLACE TABLE {pending} AS "
                        f"FROM {raw} ANTI JOIN settled_keys USING (rid, imp_id)").fetchall()
        con.execute("DROP TABLE settled_keys").fetchall()
        con.execute("COMMIT").fetchall()
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise
    return n


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def rid_range(con: duckdb.DuckDBPyConnection, rows: str) -> str | None:
    """``rid BETWEEN lo AND hi`` over the rids of relation ``rows`` (None when empty), with
    literal bounds so DuckDB prunes row groups by their min/max rid before scanning."""
    lo, hi = con.execute(f"SELECT min(rid), max(rid) FROM {rows}").fetchall()[0]
    return None if lo is None else f"rid BETWEEN {_literal(lo)} AND {_literal(hi)}"


def insert_new(con: duckdb.DuckDBPyConnection, table: str, rows: str) -> int:
    """Insert the rows of query ``rows`` (positional, in ``table``'s column order) whose
    (rid, imp_id) ``table`` does not hold yet, each key once (duplicates on the wire carry
    the same row); they are left in the temp table ``ingest_new``. Returns how many. Only
    the table's rows in the batch's rid range are compared (see the module doc)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE ingest_rows AS FROM {table} LIMIT 0").fetchall()
    con.execute(f"INSERT INTO ingest_rows {rows}").fetchall()
    in_range = rid_range(con, "ingest_rows")
    known = f"(SELECT rid, imp_id FROM {table} WHERE {in_range or 'false'})"
    con.execute("CREATE OR REPLACE TEMP TABLE ingest_new AS FROM ingest_rows ANTI JOIN "
                f"{known} USING (rid, imp_id) "
                "QUALIFY row_number() OVER (PARTITION BY rid, imp_id) = 1").fetchall()
    return con.execute(f"INSERT INTO {table} FROM ingest_new").fetchall()[0][0]


def refresh_outcomes(con: duckdb.DuckDBPyConnection, table: str, new_rows: str) -> None:
    """Bring ``outcomes`` up to date after ``new_rows`` (a relation: rows just inserted into
    raw ``table``, none of them there before) — inside the caller's transaction.

    Only small tables are joined: until a key has all three raw rows, every raw row of it is
    also in the pending tables, so the outcome select over them restricted to the touched
    keys equals the full select for those keys. The outcomes rows of those keys are replaced
    (an outcome may arrive before or after its request and response): deleted where they
    exist — looked up in the keys' rid range only — and inserted afresh; then keys that now
    have all three rows leave the pending tables.
    """
    pending = schema.PENDING
    con.execute(f"INSERT INTO {pending[table]} SELECT * FROM {new_rows}").fetchall()
    con.execute(f"CREATE OR REPLACE TEMP TABLE ingest_keys AS SELECT rid, imp_id FROM {new_rows}"
                ).fetchall()
    con.execute("CREATE OR REPLACE TEMP TABLE ingest_fresh AS "
                + schema.outcomes_fresh("ingest_keys")).fetchall()
    in_range = rid_range(con, "ingest_fresh")
    if in_range is not None:
        con.execute(f"DELETE FROM outcomes WHERE {in_range} AND (rid, imp_id) IN "
                    "(SELECT rid, imp_id FROM ingest_fresh)").fetchall()
        con.execute("INSERT INTO outcomes FROM ingest_fresh").fetchall()
    con.execute("CREATE OR REPLACE TEMP TABLE ingest_settled AS "
                + schema.settled("ingest_keys", pending)).fetchall()
    for p in pending.values():
        con.execute(f"DELETE FROM {p} USING ingest_settled s "
                    f"WHERE {p}.rid = s.rid AND {p}.imp_id = s.imp_id").fetchall()


def stored_offsets(con: duckdb.DuckDBPyConnection, topic: str) -> dict[int, int]:
    got = con.execute(
        'SELECT "partition", next_offset FROM ingest_offsets WHERE topic = ?', [topic]
    ).fetchall()
    return dict(got)


_DONE = object()


class ChunkReader(threading.Thread):
    """Consumes from the stored positions and hands over Arrow chunks of message bytes.

    Runs beside the DuckDB inserts (which release the GIL), so reading the next chunk
    overlaps inserting the previous one. Stops after ``max_messages`` or when nothing new
    arrived for ``idle_s``: the end is decided by idleness, not by the broker's high
    watermark (wrong on Tansu).
    """

    def __init__(self, consumer_conf: dict, topic: str, start: dict[int, int],
                 max_messages: int, idle_s: float, chunk: int = 50_000) -> None:
        super().__init__(name=f"ingest-reader-{topic}", daemon=True)
        self.conf, self.topic, self.start_at = consumer_conf, topic, start
        self.max_messages, self.idle_s, self.chunk = max_messages, idle_s, chunk
        self.chunks: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.stop_reading = threading.Event()

    def run(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # handed to the writer, which re-raises it
            self.error = exc
        finally:
            self.chunks.put(_DONE)

    def _read(self) -> None:
        c = Consumer(self.conf)
        try:
            md = c.list_topics(self.topic, timeout=10).topics.get(self.topic)
            if md is None or md.error is not None:
                raise RuntimeError(f"topic {self.topic} does not exist")
            c.assign([TopicPartition(self.topic, p, self.start_at.get(p, OFFSET_BEGINNING))
                      for p in md.partitions])
            pending: list = []
            total = 0
            last = time.monotonic()
            while (total < self.max_messages and time.monotonic() - last < self.idle_s
                   and not self.stop_reading.is_set()):
                want = min(5000, self.max_messages - total)
                for msg in c.consume(want, timeout=0.2):
                    if msg.error() is None:
                        pending.append(msg)
                        last = time.monotonic()
                    elif msg.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {self.topic}: {msg.error()}")
                if len(pending) >= self.chunk:
                    total += len(pending)
                    self._hand_over(pending)
                    pending = []
            if pending:
                self._hand_over(pending)
        finally:
            c.close()

    def _hand_over(self, msgs: list) -> None:
        self.chunks.put(pa.table({
            "partition": pa.array([m.partition() for m in msgs], pa.int32()),
            "offset": pa.array([m.offset() for m in msgs], pa.int64()),
            "value": pa.array([m.value() for m in msgs], pa.binary()),
        }))

    def __iter__(self):
        while (item := self.chunks.get()) is not _DONE:
            yield item
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Stop reading and unblock the thread if it waits on a full queue."""
        self.stop_reading.set()
        while self.is_alive():
            with contextlib.suppress(queue.Empty):
                self.chunks.get(timeout=0.1)
        self.join()


def ingest_topic(
    con: duckdb.DuckDBPyConnection,
    consumer_conf: dict,
    topic: str,
    table: str,
    max_messages: int = 500_000,
    idle_s: float = 1.0,
    before_commit: Callable[[], None] | None = None,
    chunk: int = 50_000,
) -> IngestResult:
    ensure_schema(con)
    result = IngestResult(topic, table)
    reader = ChunkReader(consumer_conf, topic, stored_offsets(con, topic), max_messages, idle_s,
                         chunk)
    reader.start()
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        for batch in reader:  # only the bytes cross into DuckDB; it parses (transforms.py)
            result.messages += batch.num_rows
            con.register("ingest_batch", batch)
            con.execute(transforms.PARSE[table]).fetchall()
            # exactly the rows that were not there yet (duplicates collapse): ingest_new
            inserted = insert_new(con, table, transforms.ROWS[table])
            result.inserted += inserted
            if inserted:
                refresh_outcomes(con, table, "ingest_new")
            result.rejected += con.execute(
                "INSERT INTO ingest_rejects SELECT ?, \"partition\", \"offset\", reason, now() "
                "FROM parsed WHERE NOT ok ON CONFLICT DO NOTHING", [topic]).fetchall()[0][0]
            for p, o in con.execute('SELECT "partition", max("offset") + 1 FROM ingest_batch '
                                    "GROUP BY 1").fetchall():
                result.offsets[p] = max(result.offsets.get(p, 0), o)
            con.unregister("ingest_batch")
        if not result.messages:
            con.execute("ROLLBACK").fetchall()
            return result
        con.executemany(
            "INSERT INTO ingest_offsets VALUES (?, ?, ?, now()) ON CONFLICT (topic, \"partition\")"
            " DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
            [(topic, p, o) for p, o in result.offsets.items()],
        )
        if before_commit is not None:
            before_commit()
        con.execute("COMMIT").fetchall()
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise
    finally:
        reader.close()
    return result
