"""``outcomes`` kept incrementally by the ingest equals a full rebuild, whatever the order.

Real Tansu, on DuckDB and on PostgreSQL (``warehouse_backend``): messages on the three
topics arrive interleaved and out of order (outcomes before their requests and responses,
requests never answered, outcomes whose request never comes, at-least-once duplicates), are
ingested in several orders and in small batches, and one ingest dies between INSERT and
COMMIT; after every step the table must equal the full select over all raw rows (EXCEPT ALL
both ways and counts), and the pending tables must hold exactly the raw rows of the keys
that do not have all three rows yet.
"""

from __future__ import annotations

import multiprocessing
import os
import random

import duckdb
import orjson
import pytest

from helios_pipeline.resources import KafkaResource
from helios_pipeline.warehouse import ingest as wh_ingest
from helios_pipeline.warehouse import schema
from helios_pipeline.warehouse.backend import as_warehouse
from helios_pipeline.warehouse.ingest import ensure_schema, ingest_topic
from tests.integration.conftest import WarehouseSpec, produce

pytestmark = pytest.mark.integration
T0 = 1_790_000_000_000  # epoch ms
TABLE_TOPIC = {"bid_requests": "topic_requests", "bid_responses": "topic_responses",
               "auction_outcomes": "topic_outcomes"}


def traffic(rng: random.Random, n: int) -> dict[str, list[tuple[str, bytes]]]:
    """``n`` requests of 1-3 imps: 85 % answered, 85 % of imps with an outcome, plus a few
    outcomes whose request never comes; returned per raw table as (key, value) records."""
    out: dict[str, list[tuple[str, bytes]]] = {t: [] for t in TABLE_TOPIC}
    for i in range(n):
        rid = f"rid-{i:04d}"
        received = T0 + i * 1000
        imps = [{"id": str(k + 1), rng.choice(("banner", "video", "native")): {},
                 "bidfloor": rng.choice((0.0, 0.5, 1.0)), "bidfloorcur": "USD"}
                for k in range(rng.choice((1, 1, 2, 3)))]
        site = {"site": {"domain": f"site{i % 5}.example", "publisher": {"id": f"p{i % 3}"}}} \
            if i % 4 else {"app": {"bundle": f"com.app{i % 2}", "publisher": {"id": "pa"}}}
        req = {"id": f"q{i}", "imp": imps, "at": rng.choice((1, 2)), **site,
               "device": {"devicetype": 2, "geo": {"country": "USA"}}, "user": {"id": f"u{i}"}}
        out["bid_requests"].append((rid, orjson.dumps({  # the gateway's envelope
            "v": 1, "rid": rid, "received_at": received, "imp_ids": [m["id"] for m in imps],
            "request": req})))
        enriched = rng.random() < 0.7
        priced = []
        for imp in imps:
            price = round(rng.uniform(0.2, 3.0), 3)
            priced.append((imp, price) if rng.random() < 0.7 else (imp, None))
        if rng.random() < 0.85:
            out["bid_responses"].append((rid, orjson.dumps({
                "v": 1, "rid": rid, "request_id": f"q{i}", "bid_at": received + 5,
                "enriched": enriched, "profile": f"u{i}" if enriched else None,
                "segment": "IAB1" if enriched else None, "interest_score": 0.5,
                "imps": [{"imp_id": imp["id"], "nobid_reason": None if p else "below_floor",
                          "bid": {"price": p, "cur": "USD", "price_usd": p, "crid": "cr1"}
                          if p else None} for imp, p in priced]})))
        for imp, p in priced:
            if rng.random() < 0.85:
                won = p is not None and rng.random() < 0.4
                out["auction_outcomes"].append((rid, _outcome(rid, imp["id"], i, received, p,
                                                              won)))
    for j in range(3):  # outcomes whose request and response never come
        out["auction_outcomes"].append((f"orphan-{j}", _outcome(f"orphan-{j}", "1", 9000 + j,
                                                                T0, 1.0, False)))
    return out


def _outcome(rid: str, imp_id: str, i: int, received: int, price: float | None,
             won: bool) -> bytes:
    outcome = "nobid" if price is None else ("won" if won else "lost")
    return orjson.dumps({
        "v": 1, "rid": rid, "imp_id": imp_id, "request_id": f"q{i}", "outcome": outcome,
        "media": None if i % 3 == 0 else "banner", "segment": "IAB1", "enriched": True,
        "at": 2, "floor_usd": 0.1, "bid_price_usd": price,
        "clearing_price_usd": round(price * 0.8, 4) if won else None,
        "competitor_price_usd": None, "loss_reason": None if won else 102,
        "nobid_reason": "below_floor" if price is None else None, "strategy": "second_price",
        "received_at": received, "bid_at": received + 5, "decided_at": received + 12})


def diff(con) -> tuple[int, int, int, int]:
    """(rows only in outcomes, rows only in the full rebuild, count, rebuild count)."""
    full = schema.outcomes_select()
    return tuple(as_warehouse(con).execute(f"""
        SELECT (SELECT count(*) FROM (SELECT * FROM outcomes EXCEPT ALL {full}) a),
               (SELECT count(*) FROM ({full} EXCEPT ALL SELECT * FROM outcomes) b),
               (SELECT count(*) FROM outcomes), (SELECT count(*) FROM ({full}) c)""")[0])


def assert_equals_rebuild(wh: WarehouseSpec) -> int:
    with wh.open() as db:
        ensure_schema(db)
        only_table, only_full, n, n_full = diff(db)
        assert (only_table, only_full) == (0, 0) and n == n_full
        for t in ("outcomes", *schema.RAW_TABLES):  # DuckDB: no primary key, the ingest's
            assert db.scalar(f"SELECT count(*) FROM (SELECT rid, imp_id FROM {t} "
                             "GROUP BY rid, imp_id HAVING count(*) > 1) d") == 0, t
        settled = schema.settled("auction_outcomes", {t: t for t in schema.RAW_TABLES})
        for raw, pending in schema.PENDING.items():  # the invariant the increments rely on
            expect = (f"SELECT * FROM {raw} r WHERE NOT EXISTS (SELECT 1 FROM ({settled}) s "
                      "WHERE s.rid = r.rid AND s.imp_id = r.imp_id)")
            assert db.scalar(f"SELECT (SELECT count(*) FROM ({expect} EXCEPT ALL SELECT * FROM "
                             f"{pending}) a) + (SELECT count(*) FROM (SELECT * FROM {pending} "
                             f"EXCEPT ALL {expect}) b)") == 0, pending
        return n


def ingest(settings, wh: WarehouseSpec, table: str, max_messages: int = 1000,
           chunk: int = 50_000, before_commit=None) -> int:
    conf = KafkaResource(bootstrap_servers=settings.kafka_bootstrap).reader_conf("t-inc")
    with wh.open() as db:
        res = ingest_topic(db, conf, getattr(settings, TABLE_TOPIC[table]), table,
                           max_messages=max_messages, idle_s=0.5, chunk=chunk,
                           before_commit=before_commit)
    return res.messages


def drain(settings, wh: WarehouseSpec, table: str, batch: int, chunk: int = 50_000) -> None:
    while ingest(settings, wh, table, batch, chunk):
        assert_equals_rebuild(wh)


def _crash(bootstrap: str, topic: str, table: str, wh: WarehouseSpec) -> None:
    conf = KafkaResource(bootstrap_servers=bootstrap).reader_conf("crash")
    with wh.open() as db:
        ingest_topic(db, conf, topic, table, idle_s=0.5, chunk=4,
                     before_commit=lambda: os._exit(3))  # dies between INSERT and COMMIT


def test_incremental_outcomes_equal_a_full_rebuild_after_out_of_order_and_crashed_ingests(
    settings, warehouse_backend
):
    recs = traffic(random.Random(5), 60)
    topic = {t: getattr(settings, a) for t, a in TABLE_TOPIC.items()}
    db = warehouse_backend
    thirds = {t: [r[k::3] for k in range(3)] for t, r in recs.items()}

    # 1. a third of the outcomes first (before any request or response), then requests
    produce(settings, topic["auction_outcomes"], thirds["auction_outcomes"][0])
    drain(settings, db, "auction_outcomes", batch=7, chunk=3)
    produce(settings, topic["bid_requests"], thirds["bid_requests"][0])
    drain(settings, db, "bid_requests", batch=5)
    # 2. responses of the first and second third, interleaved with the second requests
    produce(settings, topic["bid_responses"], thirds["bid_responses"][0]
            + thirds["bid_responses"][1])
    produce(settings, topic["bid_requests"], thirds["bid_requests"][1])
    for table in ("bid_responses", "bid_requests", "bid_responses"):
        ingest(settings, db, table, max_messages=6, chunk=2)
        assert_equals_rebuild(db)
    # 3. at-least-once: outcomes already ingested come again, with the second third
    produce(settings, topic["auction_outcomes"], thirds["auction_outcomes"][0][:10]
            + thirds["auction_outcomes"][1])
    for table in ("bid_requests", "auction_outcomes", "bid_responses"):
        drain(settings, db, table, batch=9, chunk=4)
    # 4. the last third of requests: the ingest dies between INSERT and COMMIT, then reruns
    produce(settings, topic["bid_requests"], thirds["bid_requests"][2]
            + thirds["bid_requests"][0][:5])
    before = assert_equals_rebuild(db)
    proc = multiprocessing.get_context("spawn").Process(
        target=_crash, args=(settings.kafka_bootstrap, topic["bid_requests"], "bid_requests",
                             db))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 3
    assert assert_equals_rebuild(db) == before  # nothing of the dead run is visible
    drain(settings, db, "bid_requests", batch=8, chunk=3)
    # 5. the rest, outcomes last, each message once more on the wire
    produce(settings, topic["bid_responses"], thirds["bid_responses"][2])
    produce(settings, topic["auction_outcomes"], thirds["auction_outcomes"][2])
    for table in ("bid_responses", "auction_outcomes"):
        drain(settings, db, table, batch=11, chunk=5)
    for table, records in recs.items():
        produce(settings, topic[table], records)
        drain(settings, db, table, batch=50, chunk=13)

    with db.open() as con:
        n_out = len({(orjson.loads(v)["rid"], orjson.loads(v)["imp_id"])
                     for _, v in recs["auction_outcomes"]})
        assert con.scalar("SELECT count(*) FROM outcomes") == n_out
        # every kind of key was exercised: complete, no response, never a request
        kinds = con.execute("""SELECT count(*) FILTER (WHERE domain <> 'unknown'
                                                       AND crid IS NOT NULL),
                                      count(*) FILTER (WHERE domain <> 'unknown' AND profile
                                                       IS NULL AND enriched IS NULL),
                                      count(*) FILTER (WHERE domain = 'unknown')
                               FROM outcomes""")[0]
        assert all(k > 0 for k in kinds), kinds
        # keyless (issue #6, and on PostgreSQL too): uniqueness is the ingest's, checked in
        # assert_equals_rebuild
        keyed = [con.has_primary_key(t) for t in ("outcomes", *schema.RAW_TABLES)]
        assert keyed == [False] * 4


def test_the_comparison_catches_a_missing_refresh(settings, warehouse_backend, monkeypatch):
    """Proof the test above can fail: requests that no longer refresh outcomes show up."""
    recs = traffic(random.Random(6), 20)
    topic = {t: getattr(settings, a) for t, a in TABLE_TOPIC.items()}
    db = warehouse_backend
    real = wh_ingest.refresh_outcomes

    def forgets_requests(con, table, new_rows):
        if table == "bid_requests":  # keeps the pending rows, skips the upsert
            as_warehouse(con).execute(
                f"INSERT INTO {schema.PENDING[table]} SELECT * FROM {new_rows}")
            return
        real(con, table, new_rows)

    monkeypatch.setattr(wh_ingest, "refresh_outcomes", forgets_requests)
    produce(settings, topic["auction_outcomes"], recs["auction_outcomes"])
    ingest(settings, db, "auction_outcomes")
    assert_equals_rebuild(db)  # outcomes alone: still right
    produce(settings, topic["bid_requests"], recs["bid_requests"])
    ingest(settings, db, "bid_requests")
    with pytest.raises(AssertionError):
        assert_equals_rebuild(db)
    with db.open() as con:
        only_table, only_full, n, n_full = diff(con)
        assert only_table == only_full > 0 and n == n_full


def test_an_outcomes_table_from_an_older_version_is_rebuilt_once(tmp_path):
    """DuckDB only: a migration of DuckDB files from older versions (a PostgreSQL warehouse
    starts at this version).
    CREATE TABLE AS (no key, no pending tables) → rebuilt on the first ingest or
    materialisation, same columns and types, then maintained incrementally."""
    db = tmp_path / "old.duckdb"
    with duckdb.connect(str(db)) as con:
        for ddl in schema.RAW_TABLES.values():
            con.execute(ddl)
        con.execute("INSERT INTO bid_requests (rid, imp_id, received_at, site_domain) VALUES "
                    "('a', '1', TIMESTAMPTZ '2026-11-20 10:00:00+00', 'x.example'), "
                    "('b', '1', TIMESTAMPTZ '2026-11-20 10:00:01+00', 'y.example')")
        con.execute("INSERT INTO bid_responses (rid, imp_id, bid_price_usd) VALUES ('a', '1', 2)")
        con.execute("INSERT INTO auction_outcomes (rid, imp_id, outcome, decided_at, received_at)"
                    " VALUES ('a', '1', 'won', now(), TIMESTAMPTZ '2026-11-20 10:00:00+00'), "
                    "('c', '1', 'nobid', now(), NULL)")
        con.execute(f"CREATE TABLE outcomes AS {schema.outcomes_select()}")  # the old asset
        old_columns = con.execute("DESCRIBE outcomes").fetchall()
        con.execute("DELETE FROM outcomes WHERE rid = 'c'")  # stale, as between old rebuilds
        assert wh_ingest.ensure_outcomes(con) is True
        assert not wh_ingest.ensure_outcomes(con)  # once
        assert [c[:2] for c in con.execute("DESCRIBE outcomes").fetchall()] == \
            [c[:2] for c in old_columns]
        assert diff(con) == (0, 0, 2, 2)
        assert con.execute(f"SELECT rid FROM {schema.PENDING['bid_requests']}").fetchall() == \
            [("b",)]
        # then incremental: b's outcome arrives
        con.execute("BEGIN TRANSACTION")
        con.execute("CREATE TEMP TABLE new_rows AS SELECT * REPLACE ('b' AS rid) "
                    "FROM auction_outcomes WHERE rid = 'a'")
        con.execute("INSERT INTO auction_outcomes FROM new_rows")
        wh_ingest.refresh_outcomes(con, "auction_outcomes", "new_rows")
        con.execute("COMMIT")
        assert diff(con) == (0, 0, 3, 3)
        assert con.execute("SELECT domain FROM outcomes WHERE rid = 'b'").fetchall() == \
            [("y.example",)]


def test_a_keyed_warehouse_loses_its_keys_once_and_keeps_its_rows(tmp_path):
    """DuckDB only: warehouses of that older version are DuckDB files.
    A warehouse of the version with ART primary keys on the raw tables and ``outcomes``
    (issue #6) is rebuilt keyless on the first ensure_schema, rows unchanged, in rid order;
    then the ingest's own dedup keeps keys unique."""
    from helios_pipeline.warehouse import tables

    db = tmp_path / "keyed.duckdb"
    with duckdb.connect(str(db)) as con:
        for row in tables.RAW.values():
            con.execute(tables.ddl(row))  # with PRIMARY KEY (rid, imp_id), as before
        con.execute(tables.ddl(tables.OutcomeRow))
        con.execute("INSERT INTO bid_requests (rid, imp_id, received_at) VALUES "
                    "('b', '1', TIMESTAMPTZ '2026-11-20 10:00:01+00'), "
                    "('a', '1', TIMESTAMPTZ '2026-11-20 10:00:00+00')")
        con.execute("INSERT INTO auction_outcomes (rid, imp_id, outcome, decided_at) VALUES "
                    "('a', '1', 'won', now())")
        ensure_schema(con)
        assert con.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = "
                           "'PRIMARY KEY' AND table_name IN ('bid_requests', 'bid_responses', "
                           "'auction_outcomes', 'outcomes')").fetchall() == [(0,)]
        assert con.execute("SELECT rid FROM bid_requests").fetchall() == [("a",), ("b",)]
        assert diff(con) == (0, 0, 1, 1)
        ensure_schema(con)  # once
        con.execute("BEGIN TRANSACTION")
        con.execute("CREATE TEMP TABLE again AS FROM bid_requests")
        assert wh_ingest.insert_new(con, "bid_requests", "SELECT * FROM again") == 0
        assert wh_ingest.insert_new(
            con, "bid_requests", "SELECT * REPLACE ('c' AS rid) FROM again") == 1  # c once
        con.execute("COMMIT")
        assert con.execute("SELECT rid, count(*) FROM bid_requests GROUP BY ALL ORDER BY ALL"
                           ).fetchall() == [("a", 1), ("b", 1), ("c", 1)]
