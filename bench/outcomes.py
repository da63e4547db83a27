"""``outcomes`` maintained by the ingest: cost of a batch against the size of the history.

``python -m bench.outcomes [--batch B] [--history H] [--reps R]`` (also a stage of
``python -m bench.warehouse``, hence of ``make bench``). Starts its own Tansu (stopped by PID),
works in a scratch directory it deletes afterwards.

B (default 100,000) auction_outcomes messages built by the real auctioneer handler are
produced once; then, R times in turn, ``ingest_topic`` (the real one: rows, outcomes upsert,
offsets, one transaction) ingests the whole batch into

- an **empty** warehouse (fresh file), and
- a warehouse already holding H (default 10,000,000) settled keys: ``outcomes`` generated
  with DuckDB SQL (the daily_stats stage's generator) over the ``HISTORY_DAYS`` days before
  the batch, ending where the batch's traffic begins, keyed by rids built as the gateway
  builds them (``messages.rid_at``: that millisecond, one of ``GATEWAYS`` process prefixes,
  the process's counter) and stored in arrival (= rid) order, as the ingest would have; the
  three raw tables derived from it; checkpointed; a fresh copy of that file each time.

The figure is the median time of the call into the full warehouse against the median into
the empty one, measured in the same run (target ≤ 1.5×). Each call is split into the
outcomes upsert (``refresh_outcomes``), COMMIT, and the rest (read, parse, raw insert,
and up to ``IDLE_S`` of end-of-topic idle wait, the same in both; the ratio without it is
shown too). Chunks and idle time as in production (50,000 messages, read overlapping insert).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from confluent_kafka import Producer

from bench import write_results
from helios_pipeline.warehouse import ingest as wh_ingest
from helios_pipeline.warehouse import schema
from helios_pipeline.warehouse.ingest import ensure_schema, ingest_topic
from ingest_services.contracts import messages as m

TOPIC = "auction_outcomes_batch"
TABLE = "auction_outcomes"
TARGET_RATIO = 1.5
IDLE_S = 1.0  # ingest_topic's default: the end of the topic is a second without a message
HISTORY_DAYS = 7
GATEWAYS = 4  # gateway processes, each with its own rid prefix and counter
HISTORY_ENDS_BEFORE_S = 300  # the batch's requests were received in the last 600 s

# messages.rid_at in SQL: 12 hex of epoch ms, the 8-hex process prefix, 12 hex of its counter
RID_SQL = ("lpad(lower(to_hex(epoch_ms({ms}))), 12, '0') || {prefix} "
           "|| lpad(lower(to_hex({counter})), 12, '0')")

# one generated day (table gen) → outcomes in arrival order: shifted so the history ends
# HISTORY_ENDS_BEFORE_S before now, rids as the gateway would have assigned them
HISTORY_FROM_GEN = f"""
    INSERT INTO outcomes BY NAME
    SELECT * EXCLUDE (gw) REPLACE (
        {RID_SQL.format(ms="received_at", prefix="substr(md5('gateway-' || gw), 1, 8)",
                        counter="$start + row_number() OVER (PARTITION BY gw "
                                "ORDER BY received_at, request_id)")} AS rid,
        CAST(received_at AT TIME ZONE 'UTC' AS DATE) AS day)
    FROM (SELECT * REPLACE (received_at + $shift AS received_at, bid_at + $shift AS bid_at,
                            decided_at + $shift AS decided_at),
                 hash(request_id) % {GATEWAYS} AS gw FROM gen)
    ORDER BY rid"""

# the raw rows an outcomes row was built from (inverse of schema.outcomes_select)
RAW_FROM_OUTCOMES = {
    "bid_requests": """
        INSERT INTO bid_requests BY NAME SELECT rid, imp_id, request_id, received_at, media,
            bidfloor, bidfloorcur, auction_type, site_domain, app_bundle, publisher_id,
            device_type, country FROM outcomes""",
    "bid_responses": """
        INSERT INTO bid_responses BY NAME SELECT rid, imp_id, request_id, bid_at, bid_price_usd,
            bid_price_usd AS bid_price, 'USD' AS bid_cur, crid, enriched, profile, segment,
            CASE WHEN outcome = 'nobid' THEN nobid_reason END AS nobid_reason FROM outcomes""",
    "auction_outcomes": """
        INSERT INTO auction_outcomes BY NAME SELECT rid, imp_id, request_id, outcome, media,
            segment, enriched, auction_type, floor_usd, bid_price_usd, clearing_price_usd,
            competitor_price_usd, loss_reason, nobid_reason, 'bench' AS strategy, received_at,
            bid_at, decided_at FROM outcomes""",
}


def prefill(db: Path, n: int, progress_factory) -> dict:
    """A warehouse with ``n`` settled keys over ``HISTORY_DAYS`` days, generated in DuckDB."""
    from bench.warehouse import OUTCOMES_SQL

    now = datetime.now(UTC)
    first = (now - timedelta(days=HISTORY_DAYS)).date()
    # the generated days end at midnight after the last one; move that to just before now
    shift = now - timedelta(seconds=HISTORY_ENDS_BEFORE_S) - datetime(
        first.year, first.month, first.day, tzinfo=UTC) - timedelta(days=HISTORY_DAYS)
    con = duckdb.connect(str(db))
    t0 = time.perf_counter()
    try:
        ensure_schema(con)  # raw tables, outcomes, empty pending tables
        con.execute("CREATE TEMP TABLE gen AS FROM outcomes LIMIT 0").fetchall()
        sql = OUTCOMES_SQL.replace("INSERT INTO outcomes BY NAME", "INSERT INTO gen BY NAME")
        per_day = -(-n // HISTORY_DAYS)
        with progress_factory() as bar:
            task = bar.add_task(f"pre-fill outcomes ({n:,} rows over {HISTORY_DAYS} days, SQL)",
                                total=n)
            for d in range(HISTORY_DAYS):
                start, stop = d * per_day, min(n, (d + 1) * per_day)
                con.execute("DELETE FROM gen").fetchall()
                for lo in range(start, stop, 1_000_000):
                    con.execute(sql.format(day=first + timedelta(days=d)),
                                [lo, min(stop, lo + 1_000_000)]).fetchall()
                con.execute(HISTORY_FROM_GEN, {"start": start, "shift": shift}).fetchall()
                bar.update(task, completed=stop)
            task = bar.add_task("derive the raw tables from it", total=len(RAW_FROM_OUTCOMES))
            for ins in RAW_FROM_OUTCOMES.values():
                con.execute(ins).fetchall()
                bar.advance(task)
        con.execute("DROP TABLE gen").fetchall()
        con.execute("CHECKPOINT").fetchall()
        # The generator's big inserts leave underfull row groups, which DuckDB merges (vacuum)
        # at the next checkpoint that has anything to write, seconds per million rows. A
        # warehouse fed by the ingest has had that checkpoint long ago: have it here, in the
        # pre-fill, rather than in the first timed ingest.
        con.execute("CREATE TABLE settle_touch (x INTEGER)").fetchall()
        con.execute("DROP TABLE settle_touch").fetchall()
        con.execute("CHECKPOINT").fetchall()
        row_groups = con.execute("SELECT count(DISTINCT row_group_id) FROM "
                                 "pragma_storage_info('outcomes')").fetchall()[0][0]
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("outcomes", *schema.RAW_TABLES, *schema.PENDING.values())}
        span = con.execute("SELECT min(received_at), max(received_at), count(DISTINCT rid), "
                           "bool_and(rid = lower(rid) AND length(rid) = 32) FROM outcomes"
                           ).fetchall()[0]
        # the SQL rids are messages.rid_at's, character for character
        sample = con.execute("""SELECT rid, epoch_ms(received_at), substr(rid, 13, 8),
                                        ('0x' || substr(rid, 21))::UBIGINT FROM outcomes
                                 USING SAMPLE 5 ROWS""").fetchall()
    finally:
        con.close()
    if any(counts[t] != n for t in ("outcomes", *schema.RAW_TABLES)) or \
            any(counts[p] for p in schema.PENDING.values()) or span[2] != n or not span[3]:
        raise SystemExit(f"pre-fill produced {counts}, {span}")
    if any(rid != m.rid_at(ms, prefix, c) for rid, ms, prefix, c in sample):
        raise SystemExit(f"pre-fill rids differ from messages.rid_at: {sample}")
    return {"seconds": time.perf_counter() - t0, "rows": counts,
            "received_from": span[0], "received_to": span[1], "days": HISTORY_DAYS,
            "outcomes_row_groups": row_groups,
            "file_bytes": db.stat().st_size}


def produce(bootstrap: str, msgs: list[tuple[str, bytes]]) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "compression.type": "lz4",
                  "enable.idempotence": True})
    for key, value in msgs:
        while True:
            try:
                p.produce(TOPIC, value, key)
                break
            except BufferError:
                p.poll(0.01)
    if p.flush(120):
        raise SystemExit("batch not acknowledged by the broker")


def timed_call(db: Path, conf: dict, batch: int) -> dict:
    """One ingest_topic call over the whole batch, split into its parts."""
    parts = {"refresh_outcomes_s": 0.0}
    real = wh_ingest.refresh_outcomes

    def timed_refresh(*a, **kw):
        t = time.perf_counter()
        real(*a, **kw)
        parts["refresh_outcomes_s"] += time.perf_counter() - t

    marks: dict[str, float] = {}
    wh_ingest.refresh_outcomes = timed_refresh  # ingest_topic looks it up at call time
    con = duckdb.connect(str(db))
    try:
        t0 = time.perf_counter()
        res = ingest_topic(con, conf, TOPIC, TABLE, max_messages=batch, idle_s=IDLE_S,
                           before_commit=lambda: marks.setdefault("commit", time.perf_counter()))
        total = time.perf_counter() - t0
        rows = con.execute("SELECT count(*) FROM outcomes").fetchall()[0][0]
    finally:
        wh_ingest.refresh_outcomes = real
        t = time.perf_counter()
        con.close()
        close_s = time.perf_counter() - t
    if res.messages != batch or res.inserted != batch:
        raise SystemExit(f"ingest read {res.messages} and inserted {res.inserted}, "
                         f"expected {batch}")
    commit_s = t0 + total - marks["commit"]
    return {"seconds": total, **parts, "commit_s": commit_s, "close_s": close_s,
            "rest_s": total - parts["refresh_outcomes_s"] - commit_s, "outcomes_rows": rows}


def stage_outcomes(s, work: Path, batch: int, history: int, reps: int, console,
                   progress_factory) -> dict:
    from bench.warehouse import outcome_messages
    from ingest_services.common.kafka import ensure_topics, reader_config

    console.rule(f"[bold]outcomes kept by the ingest: {batch:,}-message batch, empty vs "
                 f"{history:,} outcomes")
    base = work / "history.duckdb"
    filled = prefill(base, history, progress_factory)
    ensure_topics(s, [TOPIC])
    msgs, mix = outcome_messages(s, batch)
    produce(s.kafka_bootstrap, msgs)
    del msgs
    runs: dict[str, list[dict]] = {"empty": [], "full": []}
    with progress_factory() as bar:
        task = bar.add_task("ingest_topic: empty, then full (fresh copies)", total=2 * reps)
        for k in range(reps):
            for kind in ("empty", "full"):
                db = work / f"{kind}-{k}.duckdb"
                if kind == "full":
                    shutil.copyfile(base, db)
                conf = reader_config(s, f"bench-outcomes-{kind}-{k}")
                runs[kind].append(timed_call(db, conf, batch))
                bar.advance(task)
                db.unlink()
                db.with_name(db.name + ".wal").unlink(missing_ok=True)
    med = {kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
           for kind, rs in runs.items()}
    ratio = med["full"]["seconds"] / med["empty"]["seconds"]
    if any(r["outcomes_rows"] != history + batch for r in runs["full"]):
        raise SystemExit("the full warehouse did not end with history + batch outcomes")
    return {"batch": batch, "history": history, "reps": reps, "outcome_mix": mix,
            "prefill": filled, "runs": runs, "median": med, "ratio": ratio,
            "target_ratio": TARGET_RATIO}


def report_rows(o: dict) -> list[tuple[str, str, str, str]]:
    e, f = o["median"]["empty"], o["median"]["full"]
    ok = o["ratio"] <= TARGET_RATIO
    rows = [(f"ingest_topic, {o['batch']:,} outcome msgs, into {o['history']:,} outcomes",
             f"{f['seconds']:.2f} s (median of {o['reps']})",
             f"into an empty warehouse {e['seconds']:.2f} s → {o['ratio']:.2f}×",
             f"≤ {TARGET_RATIO}× {'[green]met[/]' if ok else '[red]missed[/]'}"),
            ("", "", f"both without the {IDLE_S:.0f} s end-of-topic wait: "
             f"{(f['seconds'] - IDLE_S) / (e['seconds'] - IDLE_S):.2f}×", "")]
    for key, label in (("refresh_outcomes_s", "outcomes upsert (refresh_outcomes)"),
                       ("commit_s", "COMMIT (incl. checkpoint)"),
                       ("rest_s", "read + parse + raw insert + offsets")):
        rows.append((f"  part: {label}", f"{f[key]:.2f} s", f"empty: {e[key]:.2f} s", ""))
    rows.append(("  close (context, not in the figure)", f"{f['close_s']:.2f} s",
                 f"empty: {e['close_s']:.2f} s", ""))
    return rows


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    from bench.warehouse import progress
    from helios_pipeline.stack.servers import start_tansu
    from ingest_services.settings import load_settings

    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=100_000)
    ap.add_argument("--history", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    console = Console()
    work = Path(tempfile.mkdtemp(prefix="helios-bench-outcomes-"))
    tansu = start_tansu(work)
    try:
        s = load_settings(kafka_bootstrap=f"127.0.0.1:{tansu.port}")
        res = stage_outcomes(s, work, args.batch, args.history, args.reps, console, progress)
    finally:
        tansu.stop()
        shutil.rmtree(work, ignore_errors=True)
    table = Table(title="outcomes kept by the ingest (both figures from this run)")
    for col in ("figure", "measured", "ceiling / context", "target"):
        table.add_column(col)
    for row in report_rows(res):
        table.add_row(*row)
    console.print(table)
    console.print(f"wrote {write_results('outcomes.json', res)}")


if __name__ == "__main__":
    main()
