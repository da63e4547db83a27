"""Bidder and auctioneer workers on a real broker, Redis and gRPC profile service."""

from __future__ import annotations

import random
import threading
from collections import Counter
from contextlib import contextmanager

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from helios_pipeline.synth import make_request
from ingest_services.auctioneer.handler import AuctioneerHandler
from ingest_services.bidder.handler import BidderHandler
from ingest_services.common.circuit import CircuitBreaker
from ingest_services.common.kafka import consumer_config
from ingest_services.common.stream_worker import StreamWorker
from ingest_services.contracts import messages as m
from ingest_services.profiles.client import ProfileClient
from ingest_services.profiles.seed import user_id
from ingest_services.settings import Settings
from tests.integration.conftest import SEED_USERS, produce, read_all

pytestmark = pytest.mark.integration


def bidder(s: Settings) -> StreamWorker:
    client = ProfileClient(s.profile_addr, 1.0, CircuitBreaker())
    return StreamWorker(s, "bidder", s.topic_requests, s.bidder_group,
                        BidderHandler(client, s.topic_responses), batch_size=200)


def auctioneer(s: Settings) -> StreamWorker:
    return StreamWorker(s, "auctioneer", s.topic_responses, s.auctioneer_group,
                        AuctioneerHandler(s, s.topic_outcomes), batch_size=200)


@contextmanager
def running(*workers: StreamWorker):
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(30)
            assert not t.is_alive(), "worker did not stop"


def envelopes(requests: list[bytes]) -> list[tuple[str, bytes, list[str]]]:
    out = []
    for raw in requests:
        rid = m.new_rid()
        imps = [i["id"] for i in orjson.loads(raw)["imp"]]
        out.append((rid, m.encode_request(rid, raw, imps, m.now_ms()), imps))
    return out


def by_key(msgs) -> Counter:
    return Counter((orjson.loads(x.value())["rid"], orjson.loads(x.value())["imp_id"])
                   for x in msgs)


def test_shared_examples_end_as_exactly_one_outcome_per_imp(settings, examples):
    reqs = envelopes([f.read_bytes() for f in examples])
    produce(settings, settings.topic_requests, [(rid, v) for rid, v, _ in reqs])
    expected = {(rid, i) for rid, _, imps in reqs for i in imps}
    with running(bidder(settings), auctioneer(settings)):
        outs = read_all(settings, settings.topic_outcomes, expect=len(expected), timeout=60)
    counts = by_key(outs)
    assert set(counts) == expected
    assert max(counts.values()) == 1
    records = [orjson.loads(x.value()) for x in outs]
    assert {r["outcome"] for r in records} <= {"won", "lost", "nobid"}
    for r in records:
        if r["outcome"] == "won":
            assert r["clearing_price_usd"] <= r["bid_price_usd"]
            assert r["clearing_price_usd"] >= r["floor_usd"]
            assert r["loss_reason"] == 0
        elif r["outcome"] == "lost":
            assert r["loss_reason"] in (100, 102)
        else:
            assert r["nobid_reason"]
    # the DOOH examples floor at 5.0 / 4.8 GBP: above anything the bidder offers
    dooh = [r for r in records if r["request_id"] in ("162059897743978051070", "873465983764395")]
    assert [r["nobid_reason"] for r in dooh] == ["below_floor", "below_floor"]


def test_known_users_are_enriched_and_unknown_users_are_not(settings):
    rng = random.Random(3)
    known = make_request(rng, "known", 0)
    known["user"] = {"id": user_id(5)}
    unknown = make_request(rng, "unknown", 0)
    unknown["user"] = {"id": "nobody-xyz"}
    reqs = envelopes([orjson.dumps(known), orjson.dumps(unknown)])
    produce(settings, settings.topic_requests, [(rid, v) for rid, v, _ in reqs])
    with running(bidder(settings)):
        resps = read_all(settings, settings.topic_responses, expect=2, timeout=60)
    got = {orjson.loads(x.value())["request_id"]: orjson.loads(x.value()) for x in resps}
    assert got["known"]["enriched"] is True and got["known"]["profile"] == "found"
    assert got["known"]["segment"].startswith("IAB")
    assert got["unknown"]["enriched"] is False and got["unknown"]["profile"] == "not_found"
    assert got["unknown"]["segment"] == "unknown"


def test_poison_messages_go_to_the_dlq_with_reason_and_the_rest_flows(settings, examples):
    good = envelopes([examples[0].read_bytes()])
    produce(settings, settings.topic_requests,
            [("poison-req", b"\x00not json"), (good[0][0], good[0][1])])
    produce(settings, settings.topic_responses,
            [("poison-resp", b'{"v":1,"rid":"poison-resp","imps":"nope"}')])
    with running(bidder(settings), auctioneer(settings)):
        outs = read_all(settings, settings.topic_outcomes, expect=len(good[0][2]), timeout=60)
        dlq_req = read_all(settings, settings.dlq(settings.topic_requests), expect=1)
        dlq_resp = read_all(settings, settings.dlq(settings.topic_responses), expect=1)
    assert {orjson.loads(x.value())["rid"] for x in outs} == {good[0][0]}
    for dlq, key, src in ((dlq_req, "poison-req", settings.topic_requests),
                          (dlq_resp, "poison-resp", settings.topic_responses)):
        assert len(dlq) == 1
        headers = {k: v.decode() for k, v in dlq[0].headers()}
        assert dlq[0].key().decode() == key
        assert headers[m.H_SOURCE_TOPIC] == src
        assert headers[m.H_SOURCE_OFFSET].isdigit()
        assert headers[m.H_REASON]


def test_stopping_and_restarting_mid_stream_loses_and_doubles_nothing(settings):
    rng = random.Random(11)
    raws = [orjson.dumps(make_request(rng, f"r{i}", SEED_USERS)) for i in range(3000)]
    reqs = envelopes(raws)
    expected = {(rid, i) for rid, _, imps in reqs for i in imps}
    produce(settings, settings.topic_requests, [(rid, v) for rid, v, _ in reqs[:1500]])
    first_bidder, first_auctioneer = bidder(settings), auctioneer(settings)
    with running(first_bidder, first_auctioneer):
        produce(settings, settings.topic_requests, [(rid, v) for rid, v, _ in reqs[1500:]])
        read_all(settings, settings.topic_outcomes, expect=200, timeout=60)
    # stopped mid-stream (graceful, as on SIGTERM); new members resume from the commits
    with running(bidder(settings), auctioneer(settings)):
        outs = read_all(settings, settings.topic_outcomes, expect=len(expected), timeout=120)
    counts = by_key(outs)
    assert set(counts) == expected
    assert [k for k, c in counts.items() if c > 1] == []
    # offsets were committed for everything consumed: nothing is left to redo
    c = Consumer(consumer_config(settings, settings.bidder_group, "check"))
    parts = [TopicPartition(settings.topic_requests, p) for p in range(settings.partitions)]
    committed = sum(tp.offset for tp in c.committed(parts, timeout=10))
    c.close()
    assert committed == len(reqs)
