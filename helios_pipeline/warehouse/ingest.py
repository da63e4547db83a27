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

Two threads share the work (bench/README.md, issue #10: the writer alone was the limit):
the reader (:class:`ChunkReader`) consumes in large batches, builds one Arrow column of
message bytes per chunk and parses it in an in-memory DuckDB of its own (transforms.py: a
guard-free pass, the guarded one only for a chunk holding poison), leaving typed rows in the
form the warehouse loads (``Warehouse.prepare``); the writer only stages them, deduplicates,
inserts, keeps ``outcomes`` and records rejects and offsets, all in the one transaction. The
DuckDB calls release the GIL, so the two overlap on two cores.
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
from helios_pipeline.warehouse.backend import Prepared, Warehouse, as_warehouse
from ingest_services.common.offset_gaps import DEFAULT_WAIT_S, REFETCH_PAUSE_S, GapGuard


@dataclass
class IngestResult:
    topic: str
    table: str
    messages: int = 0
    inserted: int = 0
    rejected: int = 0
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> next offset
    gaps_refetched: int = 0  # offset gaps that filled in on a re-read (common/offset_gaps.py)
    gaps_skipped: int = 0  # offset gaps accepted after the wait


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
        db.ddl(tables.ServingChange)
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
        db.ddl(tables.ServingChange)  # every row may have changed: the next publish is whole
        db.execute("INSERT INTO serving_changes (lo_rid, hi_rid) VALUES ('', '')")
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
    ``staged``: ``rows`` names a relation already holding the rows (``Warehouse.stage``)."""
    db = as_warehouse(con)
    relation = rows
    if not staged:
        relation = "ingest_rows"
        db.execute(f"DROP TABLE IF EXISTS {db.temp_schema}.{relation}")
        # declared, not CREATE ... AS SELECT ... WHERE false: DuckDB 2.0.0 loses the rows of
        # such an empty table once one INSERT gives it a row group (122,880 rows) inside a
        # transaction (scans return nothing while count(*) is right; test_ingest_paths.py)
        db.execute(tables.ddl(tables.TABLES[table], db.dialect, name=relation, key=False,
                              temp=True))
        db.execute(f"INSERT INTO {relation} {rows}")
    inserted, new = insert_new_rows(db, table, relation)
    if new != "ingest_new":
        db.temp("ingest_new", f"SELECT * FROM {new}")
    return inserted


def insert_new_rows(db: Warehouse, table: str, relation: str,
                    bounds: tuple[str, str] | None = None) -> tuple[int, str]:
    """:func:`insert_new` of the rows in ``relation`` (``bounds``: their min and max rid, when
    known). Returns how many and the relation holding the inserted rows: ``relation``
    itself in the usual case — no key repeated in the batch, none already in the table,
    which one cheap query on the keys tells (measured: 0.05 s vs 0.28 s for a copy with
    DISTINCT ON per 100,000 rows) — or the temp table ``ingest_new``."""
    if bounds is None:
        lo, hi = db.execute(f"SELECT min(rid), max(rid) FROM {relation}")[0]
        bounds = None if lo is None else (lo, hi)
    if bounds is None:
        return 0, relation  # no rows
    in_range = f"rid BETWEEN {_literal(bounds[0])} AND {_literal(bounds[1])}"
    exists = (f"EXISTS (SELECT 1 FROM {table} t WHERE {in_range} "
              "AND t.rid = n.rid AND t.imp_id = n.imp_id)")
    # the table's side of the join filtered by the batch's keys: PostgreSQL hashes the
    # small batch then (EXISTS from the batch's side made it hash the table's range: 4x)
    repeated, known = db.execute(
        "SELECT (SELECT count(*) FROM (SELECT rid, imp_id FROM "
        f"{relation} GROUP BY rid, imp_id HAVING count(*) > 1) d), "
        f"(SELECT count(*) FROM {table} t WHERE {in_range} AND (t.rid, t.imp_id) IN "
        f"(SELECT rid, imp_id FROM {relation}))")[0]
    if repeated or known:
        db.temp("ingest_new", f"SELECT DISTINCT ON (rid, imp_id) * FROM {relation} n "
                f"WHERE NOT {exists}")
        relation = "ingest_new"
    return db.modify(f"INSERT INTO {table} SELECT * FROM {relation}"), relation


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

    New ``auction_outcomes`` rows (the busiest topic) take a shorter way to the same state:
    their keys have no outcomes row yet (outcomes rows exist only for keys with an outcome,
    and these had none), so their rows are inserted without a delete, straight from the new
    rows joined with the pending requests and responses, and only the rows of keys still
    unsettled enter ``pending_auction_outcomes``.
    """
    db = as_warehouse(con)
    pending = schema.PENDING
    if table == "auction_outcomes":
        others = {t: pending[t] for t in ("bid_requests", "bid_responses")}
        db.execute("INSERT INTO outcomes "
                   + schema.outcomes_select(new_rows, others["bid_requests"],
                                            others["bid_responses"]))
        db.temp("ingest_settled", schema.settled(new_rows, others))
        db.execute(f"INSERT INTO {pending[table]} SELECT * FROM {new_rows} n WHERE NOT EXISTS "
                   "(SELECT 1 FROM ingest_settled s WHERE s.rid = n.rid "
                   "AND s.imp_id = n.imp_id)")
        for p in others.values():
            db.execute(f"DELETE FROM {p} USING ingest_settled s "
                       f"WHERE {p}.rid = s.rid AND {p}.imp_id = s.imp_id")
        return
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
CHUNK = 100_000  # messages per chunk: parsed, staged and deduplicated together
CONSUME_BATCH = 10_000  # messages per Consumer.consume call


@dataclass
class Chunk:
    """One chunk of messages, parsed by the reader thread."""

    messages: int
    rows: Prepared  # the typed rows of the ok messages (Warehouse.prepare)
    rejects: list[tuple[int, int, str]]  # (partition, offset, reason) of the others
    offsets: dict[int, int]  # partition -> next offset
    fast: bool  # parsed by the guard-free query (no poison in the chunk)
    bounds: tuple[str, str] | None  # min and max rid of the ok messages


def parse_chunk(local: duckdb.DuckDBPyConnection, table: str, batch: pa.Table,
                prepare: Callable[[duckdb.DuckDBPyConnection, str, int], Prepared],
                seq: int = 0) -> Chunk:
    """Parse ``batch`` (``partition``, ``offset``, ``value``) into ``table``'s rows with the
    DuckDB connection ``local``: the guard-free query first, the guarded one if any message
    of the batch made it fail (transforms.py). Rows are handed to ``prepare``."""
    local.register("ingest_batch", batch)
    try:
        try:
            local.execute("CREATE OR REPLACE TEMP TABLE parsed AS "
                          + transforms.PARSE_FAST[table]).fetchall()
            fast = True
        except duckdb.Error:  # poison in the batch: each message on its own
            local.execute("CREATE OR REPLACE TEMP TABLE parsed AS "
                          + transforms.PARSE[table]).fetchall()
            fast = False
        rejects = local.execute(
            'SELECT "partition", "offset", reason FROM parsed WHERE NOT ok').fetchall()
        lo, hi = local.execute("SELECT min(j.rid), max(j.rid) FROM parsed WHERE ok"
                               ).fetchall()[0]
        names = ", ".join(tables.column(c) for c in tables.column_names(tables.RAW[table]))
        rows = prepare(local, f"SELECT * FROM ({transforms.ROWS[table]}) AS r({names})", seq)
    finally:
        local.unregister("ingest_batch")
    parts = batch.group_by("partition").aggregate([("offset", "max")])
    offsets = {p: o + 1 for p, o in zip(parts["partition"].to_pylist(),
                                        parts["offset_max"].to_pylist(), strict=True)}
    return Chunk(batch.num_rows, rows, rejects, offsets, fast,
                 None if lo is None else (lo, hi))


class ChunkReader(threading.Thread):
    """Consumes from the stored positions and hands over chunks of messages: Arrow tables
    (``partition``, ``offset``, ``value``), or with ``table`` and ``prepare``, those parsed
    into :class:`Chunk` on this thread (its own in-memory DuckDB).

    Runs beside the writer (the DuckDB and PostgreSQL calls release the GIL), so reading and
    parsing the next chunk overlaps writing the previous one. Stops after ``max_messages``,
    when the broker returned nothing for ``idle_s`` (time spent handing a chunk over is not
    idleness), or once every partition is read up to ``stop_at``: the watermarks when the
    run began. Without that last bound a run under steady traffic never went idle and read
    until ``max_messages`` (minutes, in one transaction: nothing visible meanwhile, and the
    next runs waiting on the writer's pool; found by the soak, issue #9). Tansu's
    watermarks are lower bounds (docs/messages.md), so reaching them is certain, and what
    arrives later is the next run's.
    """

    def __init__(self, consumer_conf: dict, topic: str, start: dict[int, int],
                 max_messages: int, idle_s: float, chunk: int = CHUNK, table: str | None = None,
                 prepare: Callable[[duckdb.DuckDBPyConnection, str, int], Prepared] | None
                 = None, gap_wait_s: float = DEFAULT_WAIT_S,
                 stop_at: dict[int, int] | None = None) -> None:
        super().__init__(name=f"ingest-reader-{topic}", daemon=True)
        self.conf, self.topic, self.start_at = consumer_conf, topic, start
        self.max_messages, self.idle_s, self.chunk = max_messages, idle_s, chunk
        self.table, self.prepare = table, prepare
        self.chunks: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.stop_reading = threading.Event()
        self.local: duckdb.DuckDBPyConnection | None = None
        self.seq = 0
        # per partition, the next offset this reader will hand over; with ``stop_at`` (the
        # topic's watermarks when the run began) reading ends once every partition got there
        self.position = {p: o for p, o in start.items() if o >= 0}
        self.stop_at = stop_at or {}
        # re-reads from a gap in a partition's offsets (the embedded broker's produce/fetch
        # race): the stored offsets are where each partition must continue
        self.gaps = GapGuard(gap_wait_s) if gap_wait_s > 0 else None
        if self.gaps is not None:
            self.gaps.expected.update({(topic, p): o for p, o in start.items() if o >= 0})

    def run(self) -> None:
        try:
            self._read()
        except BaseException as exc:  # handed to the writer, which re-raises it
            self.error = exc
        finally:
            if self.local is not None:
                self.local.close()
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
            while (total + len(pending) < self.max_messages
                   and time.monotonic() - last < self.idle_s
                   and not self.stop_reading.is_set()
                   and not self.reached_stop()):
                want = min(CONSUME_BATCH, self.max_messages - total - len(pending))
                msgs = c.consume(want, timeout=0.2)
                if self.gaps is not None:
                    msgs, rewind = self.gaps.split(msgs)
                    for (t, p), o in rewind.items():
                        c.seek(TopicPartition(t, p, o))
                    if rewind:
                        time.sleep(REFETCH_PAUSE_S)
                for msg in msgs:
                    if msg.error() is None:
                        pending.append(msg)
                        self.position[msg.partition()] = msg.offset() + 1
                        last = time.monotonic()
                    elif msg.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {self.topic}: {msg.error()}")
                if len(pending) >= self.chunk:
                    total += len(pending)
                    self._hand_over(pending)
                    pending = []
                    last = time.monotonic()  # waiting for the writer is not idleness
            if pending:
                self._hand_over(pending)
        finally:
            c.close()

    def reached_stop(self) -> bool:
        """Every partition in ``stop_at`` read up to it (False without ``stop_at``)."""
        return bool(self.stop_at) and all(self.position.get(p, 0) >= mark
                                          for p, mark in self.stop_at.items())

    def _hand_over(self, msgs: list) -> None:
        batch = pa.table({
            "partition": pa.array([m.partition() for m in msgs], pa.int32()),
            "offset": pa.array([m.offset() for m in msgs], pa.int64()),
            "value": pa.array([m.value() for m in msgs], pa.binary()),
        })
        if self.table is None or self.prepare is None:
            self.chunks.put(batch)
            return
        if self.local is None:
            self.local = duckdb.connect(":memory:")
            self.local.execute("SET TimeZone = 'UTC'")
        self.seq += 1
        self.chunks.put(parse_chunk(self.local, self.table, batch, self.prepare, self.seq))

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
    chunk: int = CHUNK,
    gap_wait_s: float = DEFAULT_WAIT_S,
    stop_at: dict[int, int] | None = None,
) -> IngestResult:
    db = as_warehouse(con)
    ensure_schema(db)
    result = IngestResult(topic, table)
    db.begin()
    reader: ChunkReader | None = None
    try:
        db.lock_writers()  # PostgreSQL: one writer at a time, like DuckDB (backend.py)
        reader = ChunkReader(consumer_conf, topic, stored_offsets(db, topic), max_messages,
                             idle_s, chunk, table, db.prepare, gap_wait_s, stop_at)
        reader.start()
        for part in reader:  # parsed on the reader's thread: rows ready to stage
            result.messages += part.messages
            result.inserted += _write(db, table, part)
            if part.rejects:
                before = db.scalar("SELECT count(*) FROM ingest_rejects WHERE topic = ?",
                                   [topic])
                db.executemany(
                    "INSERT INTO ingest_rejects VALUES (?, ?, ?, ?, now()) ON CONFLICT DO NOTHING",
                    [(topic, *r) for r in part.rejects])
                result.rejected += db.scalar(
                    "SELECT count(*) FROM ingest_rejects WHERE topic = ?", [topic]) - before
            for p, o in part.offsets.items():
                result.offsets[p] = max(result.offsets.get(p, 0), o)
        if reader.gaps is not None:
            result.gaps_refetched, result.gaps_skipped = (reader.gaps.refetched,
                                                          reader.gaps.skipped)
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


def _write(db: Warehouse, table: str, part: Chunk) -> int:
    """Stage one chunk's typed rows, insert the new ones and refresh ``outcomes`` (inside
    the caller's transaction); how many rows were new."""
    if not part.rows.rows:
        return 0
    db.stage(part.rows, table, "ingest_chunk")
    try:
        # exactly the rows that were not there yet (duplicates collapse)
        inserted, new = insert_new_rows(db, table, "ingest_chunk", part.bounds)
        if inserted:
            refresh_outcomes(db, table, new)
            if part.bounds is not None:  # what the next serving publish must re-copy
                db.execute("INSERT INTO serving_changes (lo_rid, hi_rid) VALUES (?, ?)",
                           list(part.bounds))
    finally:
        db.unstage("ingest_chunk")
    return inserted
