"""The ingest's fast paths (issue #10) keep every guarantee of the guarded ones.

* a chunk parses with the guard-free query unless a message in it would make that fail;
  then the guarded query parses it again, so a poison message mixed into a batch of good
  ones is rejected alone, with its reason, and the good ones land — on both backends, from
  a real broker (Tansu);
* where the guard-free query succeeds it gives exactly the guarded query's rows and rejects;
* the insert skips its copy-and-DISTINCT step only when the batch repeats no key and the
  table holds none of them: repeated and known keys still collapse;
* a staged relation of more than one DuckDB row group (122,880 rows) inside a transaction
  keeps its rows (DuckDB 2.0.0 loses them from an empty ``CREATE TABLE AS`` in that case).
"""

from __future__ import annotations

import duckdb
import orjson
import pyarrow as pa
import pytest

from helios_pipeline.resources import KafkaResource
from helios_pipeline.warehouse import ingest as wh_ingest
from helios_pipeline.warehouse import tables, transforms
from helios_pipeline.warehouse.backend import DuckDBBackend
from helios_pipeline.warehouse.ingest import ensure_schema, ingest_topic, parse_chunk
from tests.integration.conftest import produce

pytestmark = pytest.mark.integration
T0 = 1_790_000_000_000


def outcome(i: int, **over: object) -> bytes:
    msg = {"v": 1, "rid": f"{T0 + i:012x}00000000{i:012x}", "imp_id": "1",
           "request_id": f"q{i}", "outcome": "lost", "media": "banner", "segment": "IAB1",
           "enriched": True, "at": 2, "floor_usd": 0.1, "bid_price_usd": 0.5,
           "clearing_price_usd": None, "competitor_price_usd": 0.7, "loss_reason": 102,
           "nobid_reason": None, "strategy": "market", "received_at": T0 + i,
           "bid_at": T0 + i + 5, "decided_at": T0 + i + 12}
    msg.update(over)
    return orjson.dumps(msg)


def batch(values: list[bytes]) -> pa.Table:
    return pa.table({"partition": pa.array([0] * len(values), pa.int32()),
                     "offset": pa.array(range(len(values)), pa.int64()),
                     "value": pa.array(values, pa.binary())})


def parse(values: list[bytes]) -> tuple[wh_ingest.Chunk, list[tuple]]:
    local = duckdb.connect()
    part = parse_chunk(local, "auction_outcomes", batch(values), DuckDBBackend(local).prepare)
    return part, part.rows.data.to_pylist()


def test_a_chunk_without_poison_takes_the_fast_query_and_one_with_poison_the_guarded():
    good = [outcome(i) for i in range(50)]
    part, _ = parse(good)
    assert part.fast and part.rejects == [] and part.rows.rows == 50
    # invalid JSON in the middle: the guard-free query fails, the guarded one rejects it alone
    part, rows = parse([*good[:20], b'{"v":1,"rid":', *good[20:]])
    assert not part.fast
    assert part.rejects == [(0, 20, "invalid JSON")]
    assert sorted(r["rid"] for r in rows) == sorted(orjson.loads(v)["rid"] for v in good)
    part, _ = parse([*good, b"\xff\xfe not text"])
    assert not part.fast and part.rejects == [(0, 50, "not UTF-8 text")]


def test_where_the_fast_query_succeeds_it_equals_the_guarded_one():
    """Messages that parse but break the contract do not fail the fast query: both queries
    must then give the same rows and the same reasons."""
    values = [outcome(i) for i in range(30)]
    values[3] = outcome(3, v=2)  # schema version
    values[7] = outcome(7, clearing_price_usd="__inf__").replace(b'"__inf__"', b"1e999")
    values[11] = outcome(11, decided_at=None)  # a required field missing
    values[12] = outcome(12, received_at=-5)  # out of range
    local = duckdb.connect()
    local.register("ingest_batch", batch(values))
    got = {}
    for name, sql in (("fast", transforms.PARSE_FAST), ("safe", transforms.PARSE)):
        local.execute(f"CREATE OR REPLACE TEMP TABLE parsed AS {sql['auction_outcomes']}")
        got[name] = (
            local.execute('SELECT "partition", "offset", reason FROM parsed WHERE NOT ok '
                          'ORDER BY "offset"').fetchall(),
            local.execute(f"{transforms.ROWS['auction_outcomes']} ORDER BY 1").fetchall())
    assert got["fast"] == got["safe"]
    assert [r[1] for r in got["fast"][0]] == [3, 7, 11, 12]
    assert len(got["fast"][1]) == 26
    part, _ = parse(values)
    assert part.fast and [r[1] for r in part.rejects] == [3, 7, 11, 12]


def test_poison_mixed_into_a_fast_path_batch_lands_in_rejects_and_the_rest_in_the_table(
        settings, warehouse_backend):
    """One broker batch of good outcomes with poison, a repeated message and a message
    already ingested: one chunk (the guarded query), rows once, rejects with reasons."""
    topic = settings.topic_outcomes
    conf = KafkaResource(bootstrap_servers=settings.kafka_bootstrap).reader_conf("t-paths")
    good = [outcome(i) for i in range(200)]
    produce(settings, topic, [("k", v) for v in good[:10]])
    with warehouse_backend.open() as db:
        first = ingest_topic(db, conf, topic, "auction_outcomes", idle_s=0.5)
    assert (first.messages, first.inserted, first.rejected) == (10, 10, 0)
    poison = [b'{"v":1,"rid":', b"\xc3\x28\xff", outcome(500, v=3),
              outcome(501, bid_price_usd="__nan__").replace(b'"__nan__"', b"NaN")]
    records = [*good[5:100], poison[0], good[100], good[100], *good[101:150], poison[1],
               poison[2], *good[150:], poison[3]]
    produce(settings, topic, [("k", v) for v in records])
    with warehouse_backend.open() as db:
        res = ingest_topic(db, conf, topic, "auction_outcomes", idle_s=0.5)
        rids = [r[0] for r in db.execute("SELECT rid FROM auction_outcomes ORDER BY rid")]
        outcomes = db.scalar("SELECT count(*) FROM outcomes")
        reasons = [r[0] for r in db.execute(
            'SELECT reason FROM ingest_rejects WHERE topic = ? ORDER BY "offset"', [topic])]
    assert (res.messages, res.inserted, res.rejected) == (len(records), 190, 4)
    assert rids == sorted(orjson.loads(v)["rid"] for v in good) and outcomes == 200
    assert reasons == ["invalid JSON", "not UTF-8 text", "unsupported schema version 3",
                       "non-finite number in bid_price_usd"]


def test_a_staged_relation_over_one_row_group_keeps_its_rows_inside_a_transaction(tmp_path):
    """insert_new from a query of 130,000 rows inside a transaction (DuckDB 2.0.0 returned no
    rows from an empty CREATE TABLE AS filled by one INSERT of a row group or more)."""
    n = 130_000
    rows = ("SELECT printf('%012x', 1000000 + i) || '00000000' || printf('%012x', i), '1', "
            "NULL, 'lost', 'banner', 'IAB1', true, 2, 0.1, 0.5, NULL, 0.7, 102, NULL, "
            "'market', now(), now(), now() FROM range(" + str(n) + ") t(i)")
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    try:
        ensure_schema(con)
        con.execute("BEGIN TRANSACTION")
        assert wh_ingest.insert_new(con, "auction_outcomes", rows) == n
        assert con.execute("SELECT count(rid), count(DISTINCT rid) FROM ingest_new"
                           ).fetchall() == [(n, n)]
        assert wh_ingest.insert_new(con, "auction_outcomes", rows) == 0  # all known now
        con.execute("COMMIT")
        assert con.execute("SELECT count(rid) FROM auction_outcomes").fetchall() == [(n,)]
        names = tables.column_names(tables.AuctionOutcomeRow)
        assert [c[0] for c in con.execute("DESCRIBE ingest_rows").fetchall()] == names
    finally:
        con.close()
