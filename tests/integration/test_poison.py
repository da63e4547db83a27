"""Poison written straight into every topic, past the gateway, on a real broker (Tansu).

Each kind (invalid JSON, not UTF-8, wrong schema version, missing fields, huge values,
NaN / Infinity prices, unknown currencies, a 5 MB record) must end where DESIGN.md says:
one dead letter on ``<topic>.dlq`` with its reason (bid_requests, bid_responses), or one
``ingest_rejects`` row (auction_outcomes); the consumers keep going (good messages sent
*after* the poison come through), and nothing downstream is corrupted (no outcome for a
poison, no non-finite price, no NULL where the contract has a value).
"""

from __future__ import annotations

import math
import uuid

import dagster as dg
import duckdb
import orjson
import pytest

from assets.ingest import raw_auction_outcomes
from assets.warehouse import outcomes
from ingest_services.contracts import messages as m
from tests.integration.conftest import produce, read_all
from tests.integration.test_dagster import RAW, resources
from tests.integration.test_pipeline import auctioneer, bidder, envelopes, running

pytestmark = pytest.mark.integration

BIG = 5 * 1024 * 1024
HUGE = "__huge__"  # stands for 2**70 (orjson cannot write it; dumps() swaps it in)


def dumps(obj: object) -> bytes:
    return orjson.dumps(obj).replace(f'"{HUGE}"'.encode(), str(2**70).encode())
REQUEST = {"id": "q", "at": 1, "imp": [{"id": "1", "banner": {"w": 300, "h": 250},
                                        "bidfloor": 0.01}],
           "site": {"domain": "poison.example.com"}}


def big_producer_records(s, topic: str, records: list[tuple[str, bytes]]) -> None:
    """Like conftest.produce, but allowing the 5 MB record through the client."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "message.max.bytes": 2 * BIG,
                  "linger.ms": 5})
    for key, value in records:
        p.produce(topic, value, key)
    assert p.flush(30) == 0


def request_poisons(tag: str) -> dict[str, tuple[str, bytes]]:
    """kind -> (rid, value) for bid_requests."""
    def env(kind: str, req: dict | bytes, **over: object) -> tuple[str, bytes]:
        rid = f"p-req-{kind}-{tag}"
        raw = req if isinstance(req, bytes) else orjson.dumps(req)
        value = m.encode_request(rid, raw, ["1"], m.now_ms())
        for k, v in over.items():  # rewrite one envelope field, keep the rest valid
            obj = orjson.loads(value)
            obj[k] = v
            value = dumps(obj)
        return rid, value

    big_req = {**REQUEST, "ext": {"pad": "x" * BIG}}
    return {
        "invalid_json": (f"p-req-invalid_json-{tag}", b'{"v":1,"rid":"p","imp_ids":['),
        "not_utf8": (f"p-req-not_utf8-{tag}", b"\xff\xfe\x00garbage"),
        "schema_version": env("schema_version", REQUEST, v=2),
        "missing_fields": (f"p-req-missing_fields-{tag}",
                           orjson.dumps({"v": 1, "rid": f"p-req-missing_fields-{tag}"})),
        "huge_timestamp": env("huge_timestamp", REQUEST, received_at=HUGE),
        "nan_price": env("nan_price", orjson.dumps(REQUEST).replace(b"0.01", b"NaN")),
        "infinite_price": env("infinite_price", orjson.dumps(REQUEST).replace(b"0.01",
                                                                              b"1e999")),
        "currency_not_iso": env("currency_not_iso", {**REQUEST, "cur": ["us dollars"]}),
        "five_mb": env("five_mb", big_req),
    }


def response_poisons(tag: str) -> dict[str, tuple[str, bytes]]:
    def resp(kind: str, **over: object) -> tuple[str, bytes]:
        rid = f"p-resp-{kind}-{tag}"
        obj = {"v": 1, "rid": rid, "request_id": "q", "received_at": m.now_ms(),
               "bid_at": m.now_ms(), "at": 1, "user_id": None, "profile": "no_user",
               "enriched": False, "segment": "unknown", "interest_score": None,
               "imps": [{"imp_id": "1", "media": "banner", "floor_usd": 0.01,
                         "bid": {"price": 1.0, "cur": "USD", "price_usd": 1.0,
                                 "crid": "c"}}]}
        obj.update(over)
        return rid, dumps(obj)

    def raw_price(kind: str, literal: bytes) -> tuple[str, bytes]:
        rid, value = resp(kind)
        return rid, value.replace(b'"price_usd":1.0', b'"price_usd":' + literal)

    return {
        "invalid_json": (f"p-resp-invalid_json-{tag}", b'{"v":1,"rid":'),
        "not_utf8": (f"p-resp-not_utf8-{tag}", b"\xc3\x28\xff"),
        "schema_version": resp("schema_version", v=7),
        "missing_fields": (f"p-resp-missing_fields-{tag}", orjson.dumps(
            {"v": 1, "rid": f"p-resp-missing_fields-{tag}"})),
        "huge_timestamp": resp("huge_timestamp", received_at=HUGE),
        "nan_price": raw_price("nan_price", b"NaN"),
        "infinite_price": raw_price("infinite_price", b"1e999"),
        "five_mb": resp("five_mb", segment="x" * BIG),
    }


def dlq_by_key(s, topic: str, expect: int) -> dict[str, dict]:
    out = {}
    for msg in read_all(s, s.dlq(topic), expect=expect, timeout=60):
        headers = {k: v.decode() for k, v in msg.headers() or []}
        out[msg.key().decode()] = headers
    return out


def test_poison_on_the_service_topics_ends_in_their_dlq_and_the_rest_flows(settings):
    tag = uuid.uuid4().hex[:6]
    reqs, resps = request_poisons(tag), response_poisons(tag)
    big_producer_records(settings, settings.topic_requests, list(reqs.values()))
    big_producer_records(settings, settings.topic_responses, list(resps.values()))
    good = envelopes([orjson.dumps({**REQUEST, "id": f"good{i}"}) for i in range(5)])
    # unknown (but well-formed) currencies: the gateway accepts them, the bidder no-bids
    unknown_cur = envelopes([orjson.dumps({**REQUEST, "id": "zzz", "cur": ["ZZZ"]}),
                             orjson.dumps({**REQUEST, "id": "zzf", "imp": [
                                 {**REQUEST["imp"][0], "bidfloorcur": "ZZZ"}]})])
    produce(settings, settings.topic_requests,
            [(rid, v) for rid, v, _ in good + unknown_cur])  # after the poison
    with running(bidder(settings), auctioneer(settings)):
        outs = read_all(settings, settings.topic_outcomes, expect=len(good) + 2, timeout=90)
        dead_req = dlq_by_key(settings, settings.topic_requests, len(reqs))
        dead_resp = dlq_by_key(settings, settings.topic_responses, len(resps))

    assert set(dead_req) == {rid for rid, _ in reqs.values()}, set(dead_req) ^ {
        rid for rid, _ in reqs.values()}
    assert set(dead_resp) == {rid for rid, _ in resps.values()}, set(dead_resp) ^ {
        rid for rid, _ in resps.values()}
    for dead, topic in ((dead_req, settings.topic_requests),
                        (dead_resp, settings.topic_responses)):
        for rid, headers in dead.items():
            assert headers[m.H_SOURCE_TOPIC] == topic, rid
            assert headers[m.H_REASON], rid
    assert "bytes" in dead_req[reqs["five_mb"][0]][m.H_REASON]
    assert "$.v" in dead_req[reqs["schema_version"][0]][m.H_REASON]

    got = [orjson.loads(x.value()) for x in outs]
    assert {o["rid"] for o in got} == {rid for rid, _, _ in good + unknown_cur}
    assert len(got) == len(good) + 2  # one per imp, nothing doubled, nothing for poison
    for o in got:
        for f in ("floor_usd", "bid_price_usd", "clearing_price_usd", "competitor_price_usd"):
            assert o.get(f) is None or math.isfinite(o[f]), (f, o)
        assert o["received_at"] < 2**53
    by_rid = {o["rid"]: o for o in got}
    zzz, zzf = (by_rid[rid] for rid, _, _ in unknown_cur)
    assert zzz["outcome"] == "nobid" and zzz["nobid_reason"] == "unsupported_currency"
    assert zzf["outcome"] == "nobid" and zzf["nobid_reason"] == "unsupported_floor_currency"


def outcome_poisons(tag: str) -> dict[str, tuple[str, bytes]]:
    def out(kind: str, **over: object) -> tuple[str, bytes]:
        rid = f"p-out-{kind}-{tag}"
        obj = {"v": 1, "rid": rid, "request_id": "q", "imp_id": "1", "media": "banner",
               "segment": "unknown", "enriched": False, "at": 1, "floor_usd": 0.01,
               "received_at": 1_790_000_000_000, "bid_at": 1_790_000_000_000,
               "decided_at": 1_790_000_000_000, "strategy": "market", "outcome": "won",
               "bid_price_usd": 1.0, "clearing_price_usd": 0.5, "loss_reason": None,
               "competitor_price_usd": 0.5, "crid": "c"}
        obj.update(over)
        return rid, dumps(obj)

    def raw_price(kind: str, literal: bytes) -> tuple[str, bytes]:
        rid, value = out(kind)
        return rid, value.replace(b'"clearing_price_usd":0.5', b'"clearing_price_usd":' + literal)

    return {
        "invalid_json": ("p-out-invalid_json", b'{"v":1,"rid":"x"'),
        "not_utf8": ("p-out-not_utf8", b"\xff\xfe"),
        "schema_version": out("schema_version", v=3),
        "missing_fields": out("missing_fields", decided_at=None, outcome=None),
        "huge_timestamp": out("huge_timestamp", received_at=HUGE),
        "nan_price": raw_price("nan_price", b"NaN"),
        "infinite_price": raw_price("infinite_price", b"1e999"),
        "five_mb": out("five_mb", crid="x" * BIG),
    }


def test_poison_on_the_outcome_topic_ends_in_ingest_rejects(settings, tmp_path):
    tag = uuid.uuid4().hex[:6]
    poisons = outcome_poisons(tag)
    big_producer_records(settings, settings.topic_outcomes, list(poisons.values()))
    good = {"v": 1, "rid": f"good-{tag}", "request_id": "q", "imp_id": "1",
            "outcome": "nobid", "nobid_reason": "below_floor", "decided_at": 1_790_000_000_000,
            "received_at": 1_790_000_000_000, "bid_at": 1_790_000_000_000, "media": "banner",
            "segment": "unknown", "enriched": False, "at": 1, "floor_usd": 0.01,
            "strategy": "market"}
    produce(settings, settings.topic_outcomes, [(good["rid"], orjson.dumps(good))])
    db = tmp_path / "wh.duckdb"
    assert dg.materialize([*RAW, outcomes], resources=resources(settings, db)).success
    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute("SELECT rid FROM auction_outcomes").fetchall()
        rejects = con.execute('SELECT reason FROM ingest_rejects WHERE topic = ? '
                              'ORDER BY "offset"', [settings.topic_outcomes]).fetchall()
        bad_prices = con.execute(
            "SELECT count(*) FROM outcomes WHERE NOT isfinite(coalesce(clearing_price_usd, 0))"
            " OR received_at IS NULL").fetchall()[0][0]
    finally:
        con.close()
    assert rows == [(good["rid"],)], rows
    assert len(rejects) == len(poisons), rejects
    reasons = " | ".join(r for (r,) in rejects)
    for expect in ("invalid JSON", "not UTF-8 text", "unsupported schema version 3",
                   "missing required field", "received_at out of range",
                   "non-finite number in clearing_price_usd", "bytes is over 1000000 bytes"):
        assert expect in reasons, (expect, reasons)
    assert bad_prices == 0
    # a rerun neither re-reads nor re-records anything
    assert dg.materialize([raw_auction_outcomes], resources=resources(settings, db)).success
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM ingest_rejects WHERE topic = ?",
                           [settings.topic_outcomes]).fetchall()[0][0] == len(poisons)
    finally:
        con.close()


def test_gateway_body_under_its_limit_but_over_the_message_limit_is_413(settings):
    """HELIOS_GATEWAY_MAX_BODY_BYTES (1 MiB) is above what a producer may write (1,000,000
    bytes): such a body is a clear 413, never a 500, and nothing is published."""
    from fastapi.testclient import TestClient

    from ingest_services.gateway.app import create_app

    body = orjson.dumps({**REQUEST, "ext": {"pad": "x" * 1_020_000}})
    assert m.MAX_MESSAGE_BYTES < len(body) < settings.gateway_max_body_bytes
    with TestClient(create_app(settings)) as c:
        one = c.post("/bid", content=body)
        assert one.status_code == 413, one.text
        assert "1000000" in one.json()["reason"]
        batch = c.post("/bids", content=body + b"\n" + orjson.dumps(REQUEST))
        assert batch.status_code == 200, batch.text
        assert batch.json()["accepted"] == 1
        assert [r["line"] for r in batch.json()["rejected"]] == [1]
    assert len(read_all(settings, settings.topic_requests, expect=1)) == 1
