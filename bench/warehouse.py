"""Warehouse benchmark: ``python -m bench.warehouse [--rows N] [--stats-rows M] [--profiles P]``.

Starts its own Tansu broker and redis-server on free 127.0.0.1 ports (stopped by PID at the
end), works in a scratch directory it deletes afterwards (``--keep`` keeps it), and measures
the Dagster/warehouse half of Helios, each figure beside a ceiling measured in the same run:

1. Kafka → ``auction_outcomes`` with ``helios_pipeline.warehouse.ingest.ingest_topic``:
   N (default 1,000,000) auction_outcomes messages built by the real auctioneer handler
   (``AuctioneerHandler.decide`` on synthetic bid responses), produced with linger.ms 50 and
   lz4, then ingested into a fresh DuckDB file in calls of 500,000 messages until the topic
   is drained (rows/s; target ≥ 200,000). Ceilings: a bare confluent_kafka consume of the
   same topic (messages/s) and DuckDB inserting the same rows from pre-built Arrow tables
   (rows/s). The same topic is then ingested by the same ``ingest_topic`` into PostgreSQL
   (pgserver, HELIOS_WAREHOUSE_BACKEND=postgres: parse in a local DuckDB, COPY, dedup,
   outcomes upsert, offsets, one transaction per call), beside a COPY of the same pre-built
   rows into the same table (ceiling; ``--skip postgres`` leaves PostgreSQL out). A second,
   instrumented pass repeats ingest_topic's steps one by one (read /
   read → Arrow / parse in DuckDB / insert + offsets + commit) to name the bottleneck.
2. ``daily_stats`` for one day over M (default 10,000,000) ``outcomes`` rows generated in
   DuckDB with SQL (diurnal hours, 50 Zipf-skewed domains, 27 segments, 4 media, outcomes
   won/lost/nobid ≈ 20/55/25): ``dagster.materialize`` of the partition (target ≤ 5 s)
   against the bare GROUP BY of ``schema.DAILY_STATS_FOR_DAY`` run directly in DuckDB.
3. ``user_profiles`` with P (default 1,000,000) users, seed 7: ``dagster.materialize`` against
   redis-server and a DuckDB file (target ≤ 60 s) against generating the same profiles
   alone (no I/O) and a pipelined Redis SET of the same serialized bytes.
4. ``outcomes`` kept by the ingest (``bench/outcomes.py``): one ``ingest_topic`` call over a
   B-message (default 100,000) auction_outcomes batch into a warehouse already holding H
   (default 10,000,000) outcomes against the same call into an empty one (target ≤ 1.5×).

Prints a rich table (figure, measured, ceiling/context with ratio, target) and writes
bench/results/warehouse.json.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import msgspec
import psutil
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from assets.profiles import user_profiles
from assets.warehouse import daily_stats, outcomes
from bench import write_results
from helios_pipeline.resources import DuckDBWarehouse, RedisResource
from helios_pipeline.stack.servers import Server, start_redis, start_tansu
from helios_pipeline.warehouse import schema, tables
from helios_pipeline.warehouse import tables as tables_mod
from helios_pipeline.warehouse.backend import DuckDBBackend, Warehouse, open_warehouse
from helios_pipeline.warehouse.ingest import (
    ChunkReader,
    _write,
    ensure_schema,
    ingest_topic,
    insert_new,
    parse_chunk,
    stored_offsets,
)
from ingest_services.auctioneer.handler import AuctioneerHandler
from ingest_services.bidder.pricing import price_imp
from ingest_services.common.kafka import ensure_topics, producer_config, reader_config
from ingest_services.contracts import messages as m
from ingest_services.contracts.messages import BidResponse
from ingest_services.contracts.openrtb import Imp
from ingest_services.profiles import store
from ingest_services.profiles.seed import IAB_CATEGORIES, generate_rows
from ingest_services.settings import Settings, load_settings

console = Console(width=None if sys.stdout.isatty() else 150)
TOPIC = "auction_outcomes"
TABLE = "auction_outcomes"
MAX_MESSAGES = 500_000  # per ingest_topic call, as the Dagster asset's default
REPLICA_IDLE_S = 5.0  # the instrumented replica's end-of-topic wait (subtracted)
PROFILE_BATCH = 20_000  # the user_profiles asset's default batch
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

# synthetic traffic shape for the bid responses fed to the real auctioneer
_SEG_WEIGHTS = [1.0 / (k + 1) ** 0.8 for k in range(len(IAB_CATEGORIES))]
MEDIA = ("banner", "video", "native", "audio")
_MEDIA_WEIGHTS = (65, 15, 15, 5)
FLOORS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
_FLOOR_WEIGHTS = (10, 15, 20, 20, 15, 10, 6, 4)


def progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=False)


@contextmanager
def spinner(text: str) -> Iterator[None]:
    with progress() as p:
        task = p.add_task(text, total=None)
        yield
        p.update(task, total=1, completed=1)


def clock(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


# --------------------------------------------------------------------------------------
# 1. Kafka → auction_outcomes
# --------------------------------------------------------------------------------------

_VALID_MEDIA = {"banner": {}, "video": {"mimes": ["video/mp4"]},
                "audio": {"mimes": ["audio/mp4"]}, "native": {"request": "{}"}}


_GATEWAYS = [os.urandom(4).hex() for _ in range(4)]  # rid prefixes of 4 gateway processes


def bid_response(rng: random.Random, i: int, now_ms: int) -> BidResponse:
    """One synthetic ``bid_responses`` message, priced by the bidder's own pricing rules."""
    enriched = rng.random() < 0.85
    segment = rng.choices(IAB_CATEGORIES, _SEG_WEIGHTS)[0] if enriched else None
    score = rng.betavariate(2, 3) if enriched else None
    imps = []
    for k in range(rng.choices((1, 2, 3), (80, 15, 5))[0]):
        media = rng.choices(MEDIA, _MEDIA_WEIGHTS)[0]
        imp = msgspec.convert({"id": str(k + 1), media: _VALID_MEDIA[media],
                               "bidfloorcur": "USD",
                               "bidfloor": rng.choices(FLOORS, _FLOOR_WEIGHTS)[0]}, Imp)
        imps.append(price_imp(imp, score, "USD").as_message(segment))
    received = now_ms - rng.randint(0, 600_000)
    return BidResponse(
        v=m.SCHEMA_VERSION, rid=m.rid_at(received, _GATEWAYS[i % len(_GATEWAYS)], i),
        request_id=f"req-{i}",
        at=2 if rng.random() < 0.8 else 1, segment=segment or "unknown", enriched=enriched,
        user_id=f"u{rng.randrange(1_000_000):08d}", profile="found" if enriched else "not_found",
        interest_score=score, received_at=received, bid_at=received + rng.randint(1, 15),
        imps=imps)


def outcome_messages(s: Settings, n: int) -> tuple[list[tuple[str, bytes]], dict]:
    """``n`` auction_outcomes values exactly as the auctioneer publishes them."""
    handler = AuctioneerHandler(s, TOPIC)
    rng = random.Random(11)
    now = m.now_ms()
    out: list[tuple[str, bytes]] = []
    mix = {"won": 0, "lost": 0, "nobid": 0}
    with progress() as p:
        task = p.add_task("build auction_outcomes (AuctioneerHandler.decide)", total=n)
        i = 0
        while len(out) < n:
            for o in handler.decide(bid_response(rng, i, now)):
                if len(out) < n:
                    out.append((o.rid, m.encode(o)))
                    mix[o.outcome] += 1
            i += 1
            if i % 10_000 == 0:
                p.update(task, completed=len(out))
        p.update(task, completed=len(out))
    return out, mix


def produce(s: Settings, msgs: list[tuple[str, bytes]]) -> float:
    conf = producer_config(s, "bench-warehouse", linger_ms=50)  # lz4 from settings
    p = Producer(conf)
    t0 = time.perf_counter()
    with progress() as bar:
        task = bar.add_task("produce (linger.ms 50, lz4)", total=len(msgs))
        for k, (key, value) in enumerate(msgs):
            while True:
                try:
                    p.produce(TOPIC, value, key)
                    break
                except BufferError:
                    p.poll(0.01)
            if k % 20_000 == 0:
                p.poll(0)
                bar.update(task, completed=k)
        left = p.flush(120)
        bar.update(task, completed=len(msgs))
    if left:
        raise SystemExit(f"{left} messages not acknowledged by the broker")
    return len(msgs) / (time.perf_counter() - t0)


def bare_consume(s: Settings, n: int) -> float:
    """Ceiling (a): assign every partition from the beginning and count ``n`` messages."""
    c = Consumer(reader_config(s, "bench-bare-consume"))
    try:
        parts = c.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions
        got = 0
        with progress() as bar:
            task = bar.add_task("ceiling: bare consume", total=n)
            t0 = time.perf_counter()
            c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in parts])
            deadline = t0 + 300
            while got < n and time.perf_counter() < deadline:
                batch = c.consume(5000, 0.2)
                got += sum(1 for msg in batch if msg.error() is None)
                bar.update(task, completed=got)
            elapsed = time.perf_counter() - t0
    finally:
        c.close()
    if got < n:
        raise SystemExit(f"bare consume read {got} of {n} messages")
    return got / elapsed


def timed_ingest(s: Settings, db: Path | Warehouse, n: int) -> dict:
    """The figure: ingest_topic in calls of MAX_MESSAGES until a call returns nothing (into
    the DuckDB file ``db``, or the PostgreSQL warehouse ``db``: the same code, backend.py)."""
    con = duckdb.connect(str(db)) if isinstance(db, Path) else db
    conf = reader_config(s, f"bench-ingest-{'duckdb' if isinstance(db, Path) else 'pg'}")
    calls = []
    try:
        with progress() as bar:
            task = bar.add_task(f"ingest_topic → auction_outcomes "
                                f"({'DuckDB' if isinstance(db, Path) else 'PostgreSQL'})",
                                total=n)
            while True:
                dt, res = clock(lambda: ingest_topic(con, conf, TOPIC, TABLE, MAX_MESSAGES))
                calls.append({"seconds": dt, "messages": res.messages, "rows": res.inserted,
                              "inserted": res.inserted, "rejected": res.rejected})
                bar.update(task, advance=res.messages)
                if res.messages == 0:
                    break
        stored = con.execute(f"SELECT count(*) FROM {TABLE}")
        stored = (stored if isinstance(stored, list) else stored.fetchall())[0][0]
    finally:
        con.close()
    data = [c for c in calls if c["messages"]]
    seconds = sum(c["seconds"] for c in data)
    rows = sum(c["inserted"] for c in data)
    if stored != n or rows != n:
        raise SystemExit(f"ingest stored {stored} rows (inserted {rows}), expected {n}")
    return {"calls": calls, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds,
            "final_empty_call_s": calls[-1]["seconds"],
            "rows_per_s_with_final_call": rows / (seconds + calls[-1]["seconds"])}


def instrumented_ingest(s: Settings, db: Path, n: int) -> tuple[dict, list[pa.Table]]:
    """ingest_topic's steps run one after another (same reader, same SQL), each timed.

    ingest_topic overlaps reading with inserting; this sequential replica names the phase
    that bounds it. Also returns the typed rows of each chunk as Arrow (captured outside
    the timed phases) for the pre-built-Arrow insert ceiling.
    """
    con = duckdb.connect(str(db))
    conf = reader_config(s, "bench-ingest-breakdown")
    ph = {"read_to_arrow": 0.0, "parse_in_duckdb": 0.0, "insert_commit": 0.0}
    tables: list[pa.Table] = []
    rows_total = 0
    try:
        ensure_schema(con)
        t = time.perf_counter()
        # idle 5 s, not 1: on a busy machine the first fetch of a 1 M topic can take longer
        # than 1 s, and the replica then read nothing (seen once)
        reader = ChunkReader(conf, TOPIC, stored_offsets(con, TOPIC), n, REPLICA_IDLE_S)
        reader.start()
        chunks = list(reader)  # read everything first: no overlap
        reader.join()
        if sum(c.num_rows for c in chunks) != n:
            raise SystemExit(f"the instrumented replica read {sum(c.num_rows for c in chunks)}"
                             f" of {n} messages")
        # minus the idle wait at the end
        ph["read_to_arrow"] = time.perf_counter() - t - REPLICA_IDLE_S
        local = duckdb.connect(":memory:")
        db = DuckDBBackend(con)
        with progress() as bar:
            task = bar.add_task("ingest phases (sequential replica)", total=n)
            for seq, batch in enumerate(chunks):
                t = time.perf_counter()
                part = parse_chunk(local, TABLE, batch, db.prepare, seq)
                ph["parse_in_duckdb"] += time.perf_counter() - t
                tables.append(part.rows.data)  # the typed rows, for the ceilings
                t = time.perf_counter()
                db.begin()
                rows_total += _write(db, TABLE, part)  # as the ingest: dedup, outcomes
                db.executemany("INSERT INTO ingest_rejects VALUES (?, ?, ?, ?, now()) "
                               "ON CONFLICT DO NOTHING", [(TOPIC, *r) for r in part.rejects])
                con.executemany(
                    'INSERT INTO ingest_offsets VALUES (?, ?, ?, now()) ON CONFLICT (topic, '
                    '"partition") DO UPDATE SET next_offset = excluded.next_offset, '
                    "updated_at = now()", [(TOPIC, p, o) for p, o in part.offsets.items()])
                db.commit()
                ph["insert_commit"] += time.perf_counter() - t
                bar.update(task, advance=batch.num_rows)
        local.close()
    finally:
        con.close()
    total = sum(ph.values())
    return {"phases_s": ph, "total_s": total, "rows": rows_total,
            "rows_per_s": rows_total / total, "final_empty_read_s": REPLICA_IDLE_S}, tables


def arrow_insert(db: Path, tables: list[pa.Table], on_conflict: bool) -> float:
    """Ceiling (b): DuckDB inserting pre-built Arrow batches, one transaction each."""
    con = duckdb.connect(str(db))
    try:
        con.execute(schema.RAW_TABLES[TABLE]).fetchall()
        n = 0
        t0 = time.perf_counter()
        for k, tbl in enumerate(tables):
            name = f"arrow_batch_{k}"
            con.execute("BEGIN TRANSACTION").fetchall()
            con.register(name, tbl)
            if on_conflict:
                insert_new(con, TABLE, f"SELECT * FROM {name}")
            else:
                con.execute(f"INSERT INTO {TABLE} SELECT * FROM {name}").fetchall()
            con.unregister(name)
            con.execute("COMMIT").fetchall()
            n += tbl.num_rows
        elapsed = time.perf_counter() - t0
    finally:
        con.close()
    return n / elapsed


def pg_copy(dsn: str, tables: list[pa.Table]) -> float:
    """PostgreSQL ceiling: COPY of the same pre-built rows into a fresh auction_outcomes
    as the ingest creates it (schema ``bench_copy``), one transaction per batch, nothing
    else: no dedup, no outcomes, no offsets."""
    with open_warehouse("postgres", dsn=dsn, schema="bench_copy") as db:
        db.ddl(tables_mod.RAW[TABLE], key=False, replace=True)
        db.execute(schema.rid_index(TABLE, "postgres") or "")
        n = 0
        t0 = time.perf_counter()
        for k, tbl in enumerate(tables):
            db.local.register(f"b{k}", tbl)
            db.begin()
            n += db.load(TABLE, f"SELECT * FROM b{k}")
            db.commit()
            db.local.unregister(f"b{k}")
        return n / (time.perf_counter() - t0)


def stage_ingest(s: Settings, work: Path, n: int, pg_dsn: str | None = None) -> dict:
    console.rule(f"[bold]1. Kafka → auction_outcomes, {n:,} messages")
    ensure_topics(s, [TOPIC])
    msgs, mix = outcome_messages(s, n)
    avg_bytes = sum(len(v) for _, v in msgs) / len(msgs)
    produce_rate = produce(s, msgs)
    del msgs
    consume_rate = bare_consume(s, n)
    figure = timed_ingest(s, work / "ingest.duckdb", n)
    pg: dict = {}
    if pg_dsn:  # the same topic into PostgreSQL, right after DuckDB, same code path
        with open_warehouse("postgres", dsn=pg_dsn, schema="bench_ingest") as db:
            pg["ingest"] = timed_ingest(s, db, n)
    breakdown, tables = instrumented_ingest(s, work / "ingest_breakdown.duckdb", n)
    with spinner("ceiling: DuckDB INSERT from pre-built Arrow"):
        arrow_plain = arrow_insert(work / "arrow_plain.duckdb", tables, on_conflict=False)
        arrow_conflict = arrow_insert(work / "arrow_conflict.duckdb", tables, on_conflict=True)
    if pg_dsn:
        with spinner("ceiling: PostgreSQL COPY of pre-built rows"):
            pg["ceiling_copy_rows_per_s"] = pg_copy(pg_dsn, tables)
    return {"messages": n, "postgres": pg, "outcome_mix": mix, "avg_message_bytes": avg_bytes,
            "produce_msgs_per_s": produce_rate, "ingest": figure, "breakdown": breakdown,
            "ceiling_bare_consume_msgs_per_s": consume_rate,
            "ceiling_arrow_insert_rows_per_s": arrow_plain,
            "arrow_insert_on_conflict_rows_per_s": arrow_conflict}


# --------------------------------------------------------------------------------------
# 2. daily_stats
# --------------------------------------------------------------------------------------

OUTCOMES_SQL = """
INSERT INTO outcomes BY NAME
WITH u AS (
    SELECT i, random() AS u_out, random() AS u_dom, random() AS u_seg, random() AS u_med,
           random() AS u_t, random() AS u_n1, random() AS u_n2, random() AS u_fl,
           random() AS u_cl, random() AS u_x
    FROM range(?, ?) t(i)
), d AS (
    SELECT *,
        CASE WHEN u_out < 0.20 THEN 'won' WHEN u_out < 0.75 THEN 'lost' ELSE 'nobid' END
            AS outcome,
        CAST(floor(50 * pow(u_dom, 2)) AS INTEGER) AS dom,
        CASE WHEN u_seg < 0.15 THEN 'unknown'
             ELSE 'IAB' || CAST(1 + floor(26 * pow((u_seg - 0.15) / 0.85, 1.6)) AS INTEGER)
        END AS seg,
        CASE WHEN u_med < 0.65 THEN 'banner' WHEN u_med < 0.80 THEN 'video'
             WHEN u_med < 0.95 THEN 'native' ELSE 'audio' END AS med,
        (TIMESTAMP '{day}' + to_microseconds(CAST(86400e6 * (
            (u_t + 0.08 * sin(2 * pi() * u_t) + 8.0 / 24) % 1.0) AS BIGINT)))
            AT TIME ZONE 'UTC' AS ts,
        round(exp(ln(0.6) + 0.6 * sqrt(-2 * ln(1 - u_n1)) * cos(2 * pi() * u_n2)), 4) AS bid,
        round(u_fl, 2) AS fl
    FROM u
)
SELECT md5(CAST(i AS VARCHAR)) AS rid, '1' AS imp_id, 'req-' || i AS request_id,
       DATE '{day}' AS day, ts AS received_at, ts + INTERVAL 5 MILLISECOND AS bid_at,
       ts + INTERVAL 12 MILLISECOND AS decided_at,
       CASE WHEN dom < 40 THEN printf('site%02d.example.com', dom) END AS site_domain,
       CASE WHEN dom >= 40 THEN printf('com.example.app%02d', dom) END AS app_bundle,
       CASE WHEN dom < 40 THEN printf('site%02d.example.com', dom)
            ELSE printf('com.example.app%02d', dom) END AS domain,
       'pub-' || (dom % 20) AS publisher_id, CASE WHEN u_x < 0.6 THEN 2 ELSE 4 END AS device_type,
       CASE WHEN u_x < 0.4 THEN 'USA' WHEN u_x < 0.55 THEN 'GBR' WHEN u_x < 0.7 THEN 'DEU'
            ELSE 'FRA' END AS country,
       med AS media,
       CASE WHEN outcome = 'won' THEN least(fl, bid) ELSE fl END AS floor_usd,
       CASE WHEN outcome = 'won' THEN least(fl, bid) ELSE fl END AS bidfloor,
       'USD' AS bidfloorcur, CASE WHEN u_x < 0.8 THEN 2 ELSE 1 END AS auction_type,
       CASE WHEN outcome <> 'nobid' THEN bid END AS bid_price_usd,
       seg <> 'unknown' AS enriched, seg AS segment, NULL AS profile,
       CASE WHEN outcome <> 'nobid' THEN 'cr-' || med || '-' || lower(seg) END AS crid,
       outcome,
       CASE WHEN outcome = 'won' THEN round(greatest(least(fl, bid), bid * (0.55 + 0.45 * u_cl)), 4)
       END AS clearing_price_usd,
       CASE WHEN outcome = 'won' THEN 0 WHEN outcome = 'lost' AND bid < fl THEN 100
            WHEN outcome = 'lost' THEN 102 END AS loss_reason,
       CASE WHEN outcome = 'nobid' THEN
            CASE WHEN u_cl < 0.7 THEN 'below_floor' ELSE 'unsupported_currency' END
       END AS nobid_reason,
       CASE WHEN outcome = 'won' THEN round(bid * (0.55 + 0.45 * u_cl) - 0.01, 4)
            WHEN outcome = 'lost' THEN round(bid * (1 + u_cl), 4) END AS competitor_price_usd
FROM d"""


def make_outcomes(db: Path, n: int, day: str) -> dict:
    con = duckdb.connect(str(db))
    step = 1_000_000
    try:
        for ddl in schema.RAW_TABLES.values():
            con.execute(ddl).fetchall()
        con.execute(schema.OUTCOMES).fetchall()  # empty, with exactly the asset's columns
        sql = OUTCOMES_SQL.format(day=day)
        t0 = time.perf_counter()
        with progress() as bar:
            task = bar.add_task(f"generate outcomes for {day} (SQL)", total=n)
            for start in range(0, n, step):
                con.execute(sql, [start, min(n, start + step)]).fetchall()
                bar.update(task, completed=min(n, start + step))
        gen_s = time.perf_counter() - t0
        shape = con.execute("""
            SELECT count(*), count(DISTINCT domain), count(DISTINCT segment),
                   count(DISTINCT media),
                   count(DISTINCT extract(hour FROM received_at AT TIME ZONE 'UTC')),
                   round(avg((outcome = 'won')::INT), 3), round(avg((outcome = 'lost')::INT), 3),
                   round(avg((outcome = 'nobid')::INT), 3), count(DISTINCT day)
            FROM outcomes""").fetchall()[0]
    finally:
        con.close()
    keys = ("rows", "domains", "segments", "media", "hours", "won", "lost", "nobid", "days")
    return {"generate_s": gen_s, **dict(zip(keys, shape, strict=True))}


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    """STEP_START → STEP_SUCCESS of the run's one step: the asset body without Dagster."""
    ts = {}
    for e in instance.all_logs(run_id):
        if e.dagster_event and e.dagster_event.event_type_value in ("STEP_START", "STEP_SUCCESS"):
            ts[e.dagster_event.event_type_value] = e.timestamp
    return ts["STEP_SUCCESS"] - ts["STEP_START"]


def stage_daily_stats(work: Path, n: int) -> dict:
    day = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    console.rule(f"[bold]2. daily_stats for {day} over {n:,} outcome rows")
    db = work / "stats.duckdb"
    shape = make_outcomes(db, n, day)
    select = schema.DAILY_STATS_FOR_DAY.split("INSERT INTO daily_stats", 1)[1]

    with spinner("ceiling: bare GROUP BY (DAILY_STATS_FOR_DAY's SELECT)"):
        con = duckdb.connect(str(db))
        try:
            bare_s, groups = clock(lambda: con.execute(select, [day]).fetchall())
        finally:
            con.close()

    instance = dg.DagsterInstance.ephemeral()
    with spinner("dagster.materialize(daily_stats, partition)"):
        wall, res = clock(lambda: dg.materialize(
            [outcomes, daily_stats], selection=[daily_stats], partition_key=day,
            resources={"warehouse": DuckDBWarehouse(path=str(db))}, instance=instance,
            run_config=QUIET))
    if not res.success:
        raise SystemExit("daily_stats materialization failed")
    md = res.asset_materializations_for_node("daily_stats")[0].metadata
    requests = md["requests"].value
    if requests != n or md["dagster/row_count"].value != len(groups):
        raise SystemExit(f"daily_stats counted {requests} requests in "
                         f"{md['dagster/row_count'].value} rows; expected {n} in {len(groups)}")
    step = step_seconds(instance, res.run_id)

    with spinner("context: the asset's SQL transaction without Dagster (fresh table)"):
        con = duckdb.connect(str(db))
        try:
            con.execute("DROP TABLE daily_stats").fetchall()  # as before the materialization
            def body() -> None:
                con.execute(schema.DAILY_STATS).fetchall()
                con.execute("BEGIN TRANSACTION").fetchall()
                con.execute("DELETE FROM daily_stats WHERE day = ?", [day]).fetchall()
                con.execute(schema.DAILY_STATS_FOR_DAY, [day]).fetchall()
                con.execute("COMMIT").fetchall()
            direct_s, _ = clock(body)
        finally:
            con.close()
    return {"day": day, "table": shape, "groups": len(groups), "materialize_s": wall,
            "step_s": step, "direct_sql_transaction_s": direct_s,
            "ceiling_bare_group_by_s": bare_s, "win_rate": md["win_rate"].value}


# --------------------------------------------------------------------------------------
# 3. user_profiles
# --------------------------------------------------------------------------------------

PROFILE_COLS = tuple(tables.column_names(tables.UserProfileRow))
PROFILE_DDL = tables.ddl(tables.UserProfileRow, replace=True)


def profile_columns(batch: list) -> dict[str, list]:
    """The asset's per-row column building, in effect (from ProfileRow values)."""
    cols: dict[str, list] = {k: [] for k in PROFILE_COLS}
    for r in batch:
        best = r.best()
        for k, v in (("user_id", r.user_id), ("locale", r.locale), ("country", r.country),
                     ("age_band", r.age_band), ("gender", r.gender),
                     ("income_band", r.income_band),
                     ("top_interest", best[0] if best else None),
                     ("top_score", best[1] if best else None),
                     ("interests", [c for c, _ in r.interests]),
                     ("scores", [sc for _, sc in r.interests])):
            cols[k].append(v)
    return cols


class KeyCounter(threading.Thread):
    """Progress for the asset run: polls DBSIZE of the Redis database it writes."""

    def __init__(self, client, update: Callable[[int], None]) -> None:
        super().__init__(daemon=True)
        self.client, self.update, self.stop = client, update, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                self.update(self.client.dbsize())
            except Exception:  # progress only: never fail the run over it
                continue


def stage_profiles(redis_port: int, work: Path, n: int) -> dict:
    console.rule(f"[bold]3. user_profiles, {n:,} users")
    url0 = f"redis://127.0.0.1:{redis_port}/0"
    scratch = store.connect(f"redis://127.0.0.1:{redis_port}/1")  # the ceiling's database

    profiles: list = []
    gen_s = 0.0
    with progress() as bar:
        task = bar.add_task("ceiling: generate profiles (no I/O)", total=n)
        for start in range(0, n, PROFILE_BATCH):
            t = time.perf_counter()
            profiles.extend(generate_rows(min(n, start + PROFILE_BATCH), 7, start))
            gen_s += time.perf_counter() - t
            bar.update(task, completed=len(profiles))
    t = time.perf_counter()
    blobs = [r.to_proto().SerializeToString(deterministic=True) for r in profiles]
    ser_s = time.perf_counter() - t
    keys = [store.key(p.user_id) for p in profiles]

    set_s = 0.0
    with progress() as bar:
        task = bar.add_task("ceiling: Redis pipelined SET of the same bytes", total=n)
        for start in range(0, n, PROFILE_BATCH):
            t = time.perf_counter()
            pipe = scratch.pipeline(transaction=False)
            for i in range(start, min(n, start + PROFILE_BATCH)):
                pipe.set(keys[i], blobs[i])
            pipe.execute()
            set_s += time.perf_counter() - t
            bar.update(task, completed=min(n, start + PROFILE_BATCH))
    scratch.flushdb()

    with spinner("context: column building + Arrow + DuckDB INSERT of the same rows"):
        cols_s = 0.0
        insert_s = 0.0
        con = duckdb.connect(str(work / "profiles_ceiling.duckdb"))
        try:
            con.execute(PROFILE_DDL).fetchall()
            for start in range(0, n, PROFILE_BATCH):
                batch = profiles[start:start + PROFILE_BATCH]
                t = time.perf_counter()
                cols = profile_columns(batch)
                cols_s += time.perf_counter() - t
                t = time.perf_counter()
                con.register("profile_batch", pa.table(cols))
                con.execute("INSERT INTO user_profiles SELECT * FROM profile_batch").fetchall()
                con.unregister("profile_batch")
                insert_s += time.perf_counter() - t
        finally:
            con.close()
    sample = {i: blobs[i] for i in (0, n // 2, n - 1)}
    del profiles, blobs, keys

    client = store.connect(url0)
    client.flushdb()
    instance = dg.DagsterInstance.ephemeral()
    with progress() as bar:
        task = bar.add_task("dagster.materialize(user_profiles)", total=n)
        counter = KeyCounter(client, lambda k: bar.update(task, completed=k))
        counter.start()
        try:
            wall, res = clock(lambda: dg.materialize(
                [user_profiles], instance=instance,
                resources={"warehouse": DuckDBWarehouse(path=str(work / "profiles.duckdb")),
                           "redis": RedisResource(url=url0)},
                run_config={**QUIET, "ops": {"user_profiles": {"config": {
                    "users": n, "seed": 7}}}}))
        finally:
            counter.stop.set()
            counter.join()
        bar.update(task, completed=client.dbsize())
    if not res.success:
        raise SystemExit("user_profiles materialization failed")
    stored = res.asset_materializations_for_node("user_profiles")[0].metadata[
        "dagster/row_count"].value
    same = all(client.get(store.key(f"u{i:08d}")) == b for i, b in sample.items())
    if stored != n or client.dbsize() != n or not same:
        raise SystemExit(f"user_profiles wrote {stored} rows, {client.dbsize()} keys, "
                         f"sample identical: {same}")
    step = step_seconds(instance, res.run_id)
    client.flushdb()
    return {"users": n, "materialize_s": wall, "step_s": step,
            "ceiling_generate_s": gen_s, "ceiling_redis_set_s": set_s, "serialize_s": ser_s,
            "columns_s": cols_s, "arrow_duckdb_insert_s": insert_s,
            "redis_sample_identical": same}


# --------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "[green]met[/]" if ok else "[red]missed[/]"


def report_rows(res: dict) -> list[tuple[str, str, str, str]]:
    out: list[tuple[str, str, str, str]] = []
    if "ingest" in res:
        g = res["ingest"]
        f, b = g["ingest"], g["breakdown"]
        cons, arrow = g["ceiling_bare_consume_msgs_per_s"], g["ceiling_arrow_insert_rows_per_s"]
        out.append((f"Kafka → auction_outcomes, {g['messages']:,} msgs (ingest_topic, DuckDB)",
                    f"{f['rows_per_s']:,.0f} rows/s ({f['seconds']:.1f} s)",
                    f"bare consume {cons:,.0f} msg/s → {f['rows_per_s'] / cons:.0%} of it",
                    f"≥ 200,000 rows/s {verdict(f['rows_per_s'] >= 200_000)}"))
        if g.get("postgres"):
            p = g["postgres"]["ingest"]
            copy = g["postgres"]["ceiling_copy_rows_per_s"]
            out.append(("  same topic → PostgreSQL (ingest_topic, COPY)",
                        f"{p['rows_per_s']:,.0f} rows/s ({p['seconds']:.1f} s)",
                        f"DuckDB above: {p['rows_per_s'] / f['rows_per_s']:.0%} of it; bare "
                        f"consume → {p['rows_per_s'] / cons:.0%}",
                        f"≥ 200,000 rows/s {verdict(p['rows_per_s'] >= 200_000)}"))
            out.append(("", "", f"PostgreSQL COPY of pre-built rows {copy:,.0f} rows/s → "
                        f"{p['rows_per_s'] / copy:.0%} of it", ""))
        out.append(("", "", f"DuckDB INSERT from Arrow {arrow:,.0f} rows/s → "
                    f"{f['rows_per_s'] / arrow:.0%} of it", ""))
        out.append(("", f"+{f['final_empty_call_s']:.1f} s final empty call",
                    f"{f['rows_per_s_with_final_call']:,.0f} rows/s counting it "
                    "(idle detection)", ""))
        ph = b["phases_s"]
        names = {"read_to_arrow": "read + message bytes → Arrow (reader thread)",
                 "parse_in_duckdb": "parse in DuckDB (from_json into structs)",
                 "insert_commit": "insert + rejects + offsets + commit"}
        for k, label in names.items():
            out.append((f"  phase: {label}", f"{ph[k]:.2f} s ({ph[k] / b['total_s']:.0%})",
                        f"{b['rows'] / ph[k]:,.0f} rows/s if it were the only phase", ""))
        out.append(("  phases total (instrumented replica)",
                    f"{b['total_s']:.2f} s = {b['rows_per_s']:,.0f} rows/s",
                    f"INSERT … ON CONFLICT from Arrow: "
                    f"{g['arrow_insert_on_conflict_rows_per_s']:,.0f} rows/s", ""))
    if "daily_stats" in res:
        d = res["daily_stats"]
        bare = d["ceiling_bare_group_by_s"]
        out.append((f"daily_stats, 1 day, {d['table']['rows']:,} rows (materialize)",
                    f"{d['materialize_s']:.2f} s",
                    f"bare GROUP BY {bare:.2f} s → {d['materialize_s'] / bare:.1f}× the ceiling",
                    f"≤ 5 s {verdict(d['materialize_s'] <= 5)}"))
        out.append(("  asset step (STEP_START → SUCCESS)", f"{d['step_s']:.2f} s",
                     f"Dagster overhead {d['materialize_s'] - d['step_s']:.2f} s; "
                     f"{d['groups']:,} groups", ""))
        out.append(("  asset SQL transaction without Dagster",
                    f"{d['direct_sql_transaction_s']:.2f} s",
                    f"{d['direct_sql_transaction_s'] / bare:.1f}× the bare GROUP BY", ""))
    if "profiles" in res:
        p = res["profiles"]
        gen, rset = p["ceiling_generate_s"], p["ceiling_redis_set_s"]
        out.append((f"user_profiles, {p['users']:,} users (materialize)",
                    f"{p['materialize_s']:.1f} s",
                    f"generate alone {gen:.1f} s = {gen / p['materialize_s']:.0%} of it",
                    f"≤ 60 s {verdict(p['materialize_s'] <= 60)}"))
        out.append(("", "", f"Redis pipelined SET {rset:.1f} s = "
                    f"{rset / p['materialize_s']:.0%} of it", ""))
        rest = p["materialize_s"] - gen - rset - p["serialize_s"] - p["columns_s"] - \
            p["arrow_duckdb_insert_s"]
        out.append(("  context: to_proto+serialize / columns / Arrow+DuckDB",
                    f"{p['serialize_s']:.1f} / {p['columns_s']:.1f} / "
                    f"{p['arrow_duckdb_insert_s']:.1f} s",
                    f"unaccounted {rest:.1f} s (Dagster overhead "
                    f"{p['materialize_s'] - p['step_s']:.1f} s)", ""))
    if "outcomes" in res:
        from bench.outcomes import report_rows as outcomes_rows

        out += outcomes_rows(res["outcomes"])
    return out


class CpuShare:
    """CPU seconds other processes used while a stage ran (the machine is shared).

    System busy time minus this process and the servers it started; a large share means
    the stage's figure and its ceiling were measured under contention.
    """

    def __init__(self, pids: list[int], parents: list[int] = ()) -> None:
        self.procs = [psutil.Process(), *(psutil.Process(p) for p in pids)]
        # servers whose work runs in child processes (PostgreSQL's backends): counted with
        # their reaped children's CPU (psutil's children_user/_system)
        self.parents = [psutil.Process(p) for p in parents]
        self.start = self._snap()
        self.t0 = time.monotonic()

    def _snap(self) -> tuple[float, float]:
        c = psutil.cpu_times()
        busy = sum(c) - c.idle - getattr(c, "iowait", 0.0)
        own = 0.0
        for proc in self.procs:
            try:
                own += sum(proc.cpu_times()[:2])
            except psutil.Error:
                continue
        for proc in self.parents:
            try:
                own += sum(proc.cpu_times()[:4])
                own += sum(sum(c.cpu_times()[:2]) for c in proc.children(recursive=True))
            except psutil.Error:
                continue
        return busy, own

    def done(self) -> dict:
        busy, own = self._snap()
        wall = time.monotonic() - self.t0
        other = max(0.0, (busy - self.start[0]) - (own - self.start[1]))
        cores = psutil.cpu_count() or 1
        return {"wall_s": wall, "own_cpu_s": own - self.start[1], "other_cpu_s": other,
                "other_share_of_machine": other / (wall * cores) if wall else 0.0}


def start_servers(work: Path) -> list[Server]:
    servers = [start_tansu(work)]
    try:
        servers.append(start_redis(work))
    except BaseException:
        servers[0].stop()
        raise
    return servers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="auction_outcomes messages")
    ap.add_argument("--stats-rows", type=int, default=10_000_000, help="outcomes rows")
    ap.add_argument("--profiles", type=int, default=1_000_000, help="user_profiles users")
    ap.add_argument("--batch", type=int, default=100_000, help="outcomes stage: batch")
    ap.add_argument("--history", type=int, default=10_000_000,
                    help="outcomes stage: outcomes already in the warehouse")
    ap.add_argument("--reps", type=int, default=3, help="outcomes stage: repetitions")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=("ingest", "stats", "profiles", "outcomes", "postgres"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="helios-bench-warehouse-"))
    results: dict = {"args": {k: v for k, v in vars(args).items() if k != "keep"},
                     "started_at": datetime.now(UTC).isoformat(timespec="seconds")}
    servers = start_servers(work)
    tansu, redis_srv = servers
    console.print(f"tansu pid {tansu.proc.pid} on 127.0.0.1:{tansu.port}, redis-server pid "
                  f"{redis_srv.proc.pid} on 127.0.0.1:{redis_srv.port}; scratch {work}")
    s = load_settings(kafka_bootstrap=f"127.0.0.1:{tansu.port}",
                      redis_url=f"redis://127.0.0.1:{redis_srv.port}/0", linger_ms=50)
    pids = [tansu.proc.pid, redis_srv.proc.pid]
    pg = None
    if "postgres" not in args.skip:  # the PostgreSQL warehouse (pgserver, Unix socket)
        import pgserver

        pg = pgserver.get_server(work / "pgdata", cleanup_mode="stop")
        console.print(f"postgres pid {pg.get_pid()} (pgserver); ingest also into PostgreSQL")
    contention: dict[str, dict] = {}
    results["contention"] = contention
    try:
        if "ingest" not in args.skip:
            cpu = CpuShare(pids, [pg.get_pid()] if pg else [])
            results["ingest"] = stage_ingest(s, work, args.rows, pg.get_uri() if pg else None)
            contention["ingest"] = cpu.done()
        if "stats" not in args.skip:
            cpu = CpuShare(pids)
            results["daily_stats"] = stage_daily_stats(work, args.stats_rows)
            contention["daily_stats"] = cpu.done()
        if "profiles" not in args.skip:
            cpu = CpuShare(pids)
            results["profiles"] = stage_profiles(redis_srv.port, work, args.profiles)
            contention["profiles"] = cpu.done()
        if "outcomes" not in args.skip:
            from bench.outcomes import stage_outcomes

            cpu = CpuShare(pids)
            results["outcomes"] = stage_outcomes(s, work, args.batch, args.history, args.reps,
                                                 console, progress)
            contention["outcomes"] = cpu.done()
    finally:
        for srv in servers:
            srv.stop()
        if pg is not None:
            pg.cleanup()
        if args.keep:
            console.print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    table = Table(title="Helios warehouse benchmark (ratios vs ceilings measured in this run)")
    for col in ("figure", "measured", "ceiling / context", "target"):
        table.add_column(col)
    for row in report_rows(results):
        table.add_row(*row)
    console.print(table)
    console.print(f"{psutil.cpu_count()} cores; CPU used by other processes during each stage: "
                  + ", ".join(f"{k} {v['other_cpu_s']:.0f} CPU-s "
                              f"({v['other_share_of_machine']:.0%} of the machine)"
                              for k, v in contention.items()))
    console.print(f"wrote {write_results('warehouse.json', results)}")


if __name__ == "__main__":
    main()
