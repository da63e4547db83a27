"""Load generator helpers: percentiles and the request body stream."""

import orjson
import pytest

from helios_pipeline.loadgen import Traffic, percentiles
from ingest_services.contracts.openrtb import violations as validate_bid_request

CORPUS = [b'{"id":"c1","imp":[{"id":"1","banner":{"w":1,"h":1}}]}',
          b'{"id":"c2","imp":[{"id":"1","banner":{"w":2,"h":2}}]}']


def test_percentiles_empty():
    assert percentiles([]) == {}


def test_percentiles_single():
    assert percentiles([4.2]) == {"p50": 4.2, "p90": 4.2, "p99": 4.2, "max": 4.2}


def test_percentiles_order_independent_and_monotonic():
    xs = [float(i) for i in range(1, 1001)]
    a = percentiles(xs)
    b = percentiles(list(reversed(xs)))
    assert a == b
    assert a["p50"] <= a["p90"] <= a["p99"] <= a["max"] == 1000.0
    assert a["p50"] == pytest.approx(500, abs=1)
    assert a["p90"] == pytest.approx(900, abs=1)
    assert a["p99"] == pytest.approx(990, abs=1)


def test_percentiles_rounded():
    assert percentiles([1.23456])["p50"] == 1.235


def test_synthetic_bodies_valid_and_unique():
    t = Traffic(users=1000, seed=3, corpus=[])
    ids = set()
    for i in range(2500):  # wraps around the 2000 templates
        req = orjson.loads(t.body(i))
        assert validate_bid_request(req) == [], (i, req)
        ids.add(req["id"])
    assert len(ids) == 2500


def test_bodies_deterministic_per_seed_apart_from_id():
    a, b = Traffic(100, 9, []), Traffic(100, 9, [])
    for i in range(50):
        x, y = orjson.loads(a.body(i)), orjson.loads(b.body(i))
        x.pop("id")
        y.pop("id")
        assert x == y


@pytest.mark.parametrize("share", [0.02, 0.05, 0.1, 0.25])
def test_corpus_interleaved_at_share(share):
    t = Traffic(100, 1, CORPUS, corpus_share=share)
    n = 2000
    bodies = [t.body(i) for i in range(n)]
    from_corpus = [b for b in bodies if b in CORPUS]
    assert len(from_corpus) == pytest.approx(share * n, rel=0.05)
    # both corpus files are used, alternately
    assert from_corpus[:4] == [CORPUS[0], CORPUS[1], CORPUS[0], CORPUS[1]]


def test_no_corpus_share_zero():
    t = Traffic(100, 1, CORPUS, corpus_share=0)
    assert all(t.body(i) not in CORPUS for i in range(200))


@pytest.mark.parametrize("share", [0.02, 0.3, 0.75])
def test_corpus_share_is_honoured_exactly(share):
    corpus = [b'{"id":"c","imp":[{"id":"1","banner":{}}]}']
    traffic = Traffic(users=10, seed=1, corpus=corpus, corpus_share=share)
    n = 1000
    from_corpus = sum(traffic.body(i) == corpus[0] for i in range(n))
    assert from_corpus == round(n * share)
