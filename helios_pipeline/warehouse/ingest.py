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

from helios_pipeline.warehouse import schema, tables, transforms
from helios_pipeline.warehouse.backend import Warehouse, as_warehouse


@dataclass
class IngestResult:
    topic: str
    table: str
    messages: int = 0
    inserted: int = 0
    rejected: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset


def _drop_key(db: Warehouse, table: str, row: type[tables.Table]) -> None:
    """Rebuild ``table`` from a warehouse of an older version without its primary key
    (DuckDB cannot drop one), rows in (rid, imp_id) order — a one-off, in one transaction."""
    db.begin()
    try:
        db.execute(f"ALTER TABLE {table} RENAME TO {table}_keyed")
        db.ddl(row, key=False)
        db.execute(f"INSERT INTO {table} SELECT * FROM {table}_keyed ORDER BY rid, imp_id")
        db.execute(f"DROP TABLE {table}_keyed")
        db.commit()
    except BaseException:
        db.rollback()
        raise


def ensure_schema(con: duckdb.DuckDBPyConnection | Warehouse) -> None:
    db = as_warehouse(con)
    for table, row in tables.RAW.items():
        if db.has_primary_key(table):
            _drop_key(db, table, row)
    db.begin()  # under the writer lock: concurrent CREATE IF NOT EXISTS can collide in PG
    try:
        db.lock_writers()
        for table, row in tables.RAW.items():
            db.ddl(row, key=False)
            if index := schema.rid_index(table, db.dialect):
                db.execute(index)
        db.ddl(tables.IngestOffset)
        db.ddl(tables.IngestReject)
        db.commit()
    except BaseException:
        db.rollback()
        raise
    ensure_outcomes(db)


def ensure_outcomes(con: duckdb.DuckDBPyConnection | Warehouse) -> bool:
    """Make sure ``outcomes`` and the pending tables exist; a warehouse from an older version
    (``outcomes`` built by CREATE TABLE AS without pending tables, or with a primary key)
    or without them is rebuilt once. True when it rebuilt."""
    db = as_warehouse(con)
    if db.has_table("outcomes") and not db.has_primary_key("outcomes") and all(
            db.has_table(p) for p in schema.PENDING.values()):
        return False
    rebuild_outcomes(db)
    return True


def rebuild_outcomes(con: duckdb.DuckDBPyConnection | Warehouse) -> int:
    """Recompute ``outcomes`` and the pending tables from all raw rows, in one transaction
    (a one-off: migration, repair, tests). Returns the number of outcomes rows."""
    db = as_warehouse(con)
    db.begin()
    try:
        db.lock_writers()
        db.ddl(tables.OutcomeRow, key=False, replace=True)
        if index := schema.rid_index("outcomes", db.dialect):
            db.execute(index)
        n = db.modify(f"INSERT INTO outcomes {schema.outcomes_select()} ORDER BY rid, imp_id")
        db.temp("settled_keys",
                schema.settled("auction_outcomes", {t: t for t in schema.RAW_TABLES}))
        for raw, pending in schema.PENDING.items():
            db.execute(f"DROP TABLE IF EXISTS {pending}")
            db.execute(f"CREATE TABLE {pending} AS SELECT * FROM {raw} r WHERE NOT EXISTS "
                       "(SELECT 1 FROM settled_keys s WHERE s.rid = r.rid AND "
                       "s.imp_id = r.imp_id)")
        db.execute("DROP TABLE settled_keys")
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return n


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def rid_range(con: duckdb.DuckDBPyConnection | Warehouse, rows: str) -> str | None:
    """``rid BETWEEN lo AND hi`` over the rids of relation ``rows`` (None when empty), with
    literal bounds so DuckDB prunes row groups by their min/max rid before scanning (and
    PostgreSQL's BRIN index on rid, schema.rid_index, the block ranges)."""
    lo, hi = as_warehouse(con).execute(f"SELECT min(rid), max(rid) FROM {rows}")[0]
    return None if lo is None else f"rid BETWEEN {_literal(lo)} AND {_literal(hi)}"


def insert_new(con: duckdb.DuckDBPyConnection | Warehouse, table: str, rows: str,
               staged: bool = False) -> int:
    """Insert the rows of query ``rows`` (positional, in ``table``'s column order) whose
    (rid, imp_id) ``table`` does not hold yet, each key once (duplicates on the wire carry
    the same row); they are left in the temp table ``ingest_new``. Returns how many. Only
    the table's rows in the batch's rid range are compared (see the module doc).
    ``staged``: the rows are already in the temp table ``ingest_rows``."""
    db = as_warehouse(con)
    if not staged:
        db.temp("ingest_rows", f"SELECT * FROM {table} WHERE false")
        db.execute(f"INSERT INTO ingest_rows {rows}")
    in_range = rid_range(db, "ingest_rows")
    db.temp("ingest_new", "SELECT DISTINCT ON (rid, imp_id) * FROM ingest_rows n "
            f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {in_range or 'false'} "
            "AND t.rid = n.rid AND t.imp_id = n.imp_id)")
    return db.modify(f"INSERT INTO {table} SELECT * FROM ingest_new")


def refresh_outcomes(con: duckdb.DuckDBPyConnection | Warehouse, table: str,
                     new_rows: str) -> None:
    """Bring ``outcomes`` up to date after ``new_rows`` (a relation: rows just inserted into
    raw ``table``, none of them there before) — inside the caller's transaction.

    Only small tables are joined: until a key has all three raw rows, every raw row of it is
    also in the pending tables, so the outcome select over them restricted to the touched
    keys equals the full select for those keys. The outcomes rows of those keys are replaced
    (an outcome may arrive before or after its request and response): deleted where they
    exist — looked up in the keys' rid range only — and inserted afresh; then keys that now
    have all three rows leave the pending tables.
    """
    db = as_warehouse(con)
    pending = schema.PENDING
    db.execute(f"INSERT INTO {pending[table]} SELECT * FROM {new_rows}")
    db.temp("ingest_keys", f"SELECT rid, imp_id FROM {new_rows}")
    db.temp("ingest_fresh", schema.outcomes_fresh("ingest_keys"))
    in_range = rid_range(db, "ingest_fresh")
    if in_range is not None:
        db.execute(f"DELETE FROM outcomes WHERE {in_range} AND (rid, imp_id) IN "
                   "(SELECT rid, imp_id FROM ingest_fresh)")
        db.execute("INSERT INTO outcomes SELECT * FROM ingest_fresh")
    db.temp("ingest_settled", schema.settled("ingest_keys", pending))
    for p in pending.values():
        db.execute(f"DELETE FROM {p} USING ingest_settled s "
                   f"WHERE {p}.rid = s.rid AND {p}.imp_id = s.imp_id")


def stored_offsets(con: duckdb.DuckDBPyConnection | Warehouse, topic: str) -> dict[int, int]:
    got = as_warehouse(con).execute(
        'SELECT "partition", next_offset FROM ingest_offsets WHERE topic = ?', [topic])
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
    con: duckdb.DuckDBPyConnection | Warehouse,
    consumer_conf: dict,
    topic: str,
    table: str,
    max_messages: int = 500_000,
    idle_s: float = 1.0,
    before_commit: Callable[[], None] | None = None,
    chunk: int = 50_000,
) -> IngestResult:
    db = as_warehouse(con)
    ensure_schema(db)
    result = IngestResult(topic, table)
    db.begin()
    reader: ChunkReader | None = None
    try:
        db.lock_writers()  # PostgreSQL: one writer at a time, like DuckDB (backend.py)
        reader = ChunkReader(consumer_conf, topic, stored_offsets(db, topic), max_messages,
                             idle_s, chunk)
        reader.start()
        for batch in reader:  # only the bytes cross into DuckDB; it parses (transforms.py)
            result.messages += batch.num_rows
            _stage(db, table, batch)
            # exactly the rows that were not there yet (duplicates collapse): ingest_new
            inserted = insert_new(db, table, "ingest_rows", staged=True)
            result.inserted += inserted
            if inserted:
                refresh_outcomes(db, table, "ingest_new")
            rejects = db.local.execute(
                'SELECT "partition", "offset", reason FROM parsed WHERE NOT ok').fetchall()
            if rejects:
                before = db.scalar("SELECT count(*) FROM ingest_rejects WHERE topic = ?",
                                   [topic])
                db.executemany(
                    "INSERT INTO ingest_rejects VALUES (?, ?, ?, ?, now()) ON CONFLICT DO NOTHING",
                    [(topic, *r) for r in rejects])
                result.rejected += db.scalar(
                    "SELECT count(*) FROM ingest_rejects WHERE topic = ?", [topic]) - before
            parts = batch.group_by("partition").aggregate([("offset", "max")])
            for p, o in zip(parts["partition"].to_pylist(), parts["offset_max"].to_pylist(),
                            strict=True):
                result.offsets[p] = max(result.offsets.get(p, 0), o + 1)
        if not result.messages:
            db.rollback()
            return result
        db.executemany(
            "INSERT INTO ingest_offsets VALUES (?, ?, ?, now()) ON CONFLICT (topic, \"partition\")"
            " DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()",
            [(topic, p, o) for p, o in result.offsets.items()],
        )
        if before_commit is not None:
            before_commit()
        db.commit()
    except BaseException:
        db.rollback()
        raise
    finally:
        if reader is not None:
            reader.close()
    return result


def _stage(db: Warehouse, table: str, batch: pa.Table) -> None:
    """Parse ``batch`` (DuckDB SQL on ``db.local``: relation ``parsed``) and leave its rows
    in the warehouse's temp table ``ingest_rows``, typed as ``table`` (PostgreSQL: by COPY)."""
    local = db.local
    local.register("ingest_batch", batch)
    try:
        local.execute(transforms.PARSE[table]).fetchall()
        if db.dialect == "duckdb":
            db.temp("ingest_rows", f"SELECT * FROM {table} WHERE false")
            db.execute(f"INSERT INTO ingest_rows {transforms.ROWS[table]}")
            return
        # PostgreSQL: typed rows in a local table, then COPY into the warehouse's temp table
        local.execute(tables.ddl(tables.RAW[table], name="ingest_rows", key=False,
                                 replace=True)).fetchall()
        local.execute(f"INSERT INTO ingest_rows {transforms.ROWS[table]}").fetchall()
        if not db.has_table("pg_temp.ingest_rows"):
            db.execute(f"CREATE TEMP TABLE ingest_rows (LIKE {table})")
        db.execute("TRUNCATE ingest_rows")
        db.load("ingest_rows", "SELECT * FROM ingest_rows")
    finally:
        local.unregister("ingest_batch")
