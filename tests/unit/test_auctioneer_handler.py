"""AuctioneerHandler: one outcome per imp, determinism, strategies, dead letters."""

import msgspec
import orjson
import pytest

from ingest_services.auctioneer.handler import AuctioneerHandler
from ingest_services.contracts import messages as m
from ingest_services.contracts.messages import BidResponse
from ingest_services.settings import load_settings
from tests.unit.fakes import FakeMsg as _FakeMsg


def FakeMsg(value, **kw):
    return _FakeMsg(value, **{"topic": "bid_responses", "partition": 0, **kw})


def _bid(price_usd, media="banner"):
    return {"price": price_usd, "cur": "USD", "price_usd": price_usd,
            "crid": f"cr-{media}-iab3", "interest": "IAB3"}


def _resp(rid="rid-1", imps=None, at=2):
    if imps is None:
        imps = [
            {"imp_id": "1", "media": "banner", "floor_usd": 0.1, "bid": _bid(0.85),
             "nobid_reason": None},
            {"imp_id": "2", "media": "video", "floor_usd": 6.35, "bid": None,
             "nobid_reason": "below_floor"},
            {"imp_id": "3", "media": "video", "floor_usd": 0.0, "bid": _bid(2.125, "video")},
        ]
    return {"v": 1, "rid": rid, "request_id": "req-1", "received_at": 1_700_000_000_000,
            "bid_at": 1_700_000_000_005, "at": at, "segment": "IAB3", "enriched": True,
            "user_id": "u1", "profile": "found", "interest_score": 0.9, "imps": imps}


def _decide(h: AuctioneerHandler, resp: dict) -> list[dict]:
    """The handler decides on the decoded contract; the tests read the outcomes as dicts."""
    return [msgspec.to_builtins(o) for o in h.decide(msgspec.convert(resp, BidResponse))]


def _dumps(resp: dict) -> bytes:
    return orjson.dumps(resp)


@pytest.fixture
def handler():
    return AuctioneerHandler(load_settings(), "outcomes")


def test_one_outcome_per_imp(handler):
    out = _decide(handler, _resp())
    assert [o["imp_id"] for o in out] == ["1", "2", "3"]
    for o in out:
        assert o["rid"] == "rid-1"
        assert o["request_id"] == "req-1"
        assert o["v"] == 1
        assert o["segment"] == "IAB3"
        assert o["enriched"] is True
        assert o["strategy"] == "market"
        assert o["outcome"] in {"won", "lost", "nobid"}


def test_nobid_imp_keeps_reason(handler):
    o = _decide(handler, _resp())[1]
    assert o["outcome"] == "nobid"
    assert o["nobid_reason"] == "below_floor"
    assert o["bid_price_usd"] is None
    assert o["clearing_price_usd"] is None
    assert o["loss_reason"] is None


def test_bid_outcomes_consistent(handler):
    for o in _decide(handler, _resp())[::2]:
        assert o["bid_price_usd"] in (0.85, 2.125)
        if o["outcome"] == "won":
            assert o["loss_reason"] == 0
            assert o["floor_usd"] <= o["clearing_price_usd"] <= o["bid_price_usd"]
        else:
            assert o["loss_reason"] in (100, 102)
            assert o["clearing_price_usd"] is None


def test_same_input_same_outcomes(handler):
    a = _decide(handler, _resp())
    b = _decide(AuctioneerHandler(load_settings(), "outcomes"), _resp())
    for x, y in zip(a, b, strict=True):
        x.pop("decided_at")
        y.pop("decided_at")
        assert x == y


def test_below_floor_bid_is_lost_100(handler):
    imps = [{"imp_id": "1", "media": "banner", "floor_usd": 1.0, "bid": _bid(0.5)}]
    (o,) = _decide(handler, _resp(imps=imps))
    assert o["outcome"] == "lost"
    assert o["loss_reason"] == 100


def test_threshold_strategy_always_wins_at_probability_one():
    h = AuctioneerHandler(
        load_settings(auction_strategy="threshold", threshold_win_probability=1.0,
                      threshold_cpm=0.5),
        "outcomes",
    )
    out = _decide(h, _resp())
    assert [o["outcome"] for o in out] == ["won", "nobid", "won"]
    assert out[0]["clearing_price_usd"] == 0.85  # threshold pays its bid
    assert all(o["strategy"] == "threshold" for o in out)


def test_threshold_strategy_never_wins_at_probability_zero():
    h = AuctioneerHandler(
        load_settings(auction_strategy="threshold", threshold_win_probability=0.0), "outcomes"
    )
    out = _decide(h, _resp())
    assert [o["outcome"] for o in out] == ["lost", "nobid", "lost"]
    assert out[0]["loss_reason"] == 102


def test_market_with_no_competitors_wins_first_price():
    h = AuctioneerHandler(load_settings(market_competitors=0), "outcomes")
    out = _decide(h, _resp(at=1))
    assert out[0]["outcome"] == "won"
    assert out[0]["clearing_price_usd"] == 0.85
    out = _decide(h, _resp(at=2))
    assert out[0]["clearing_price_usd"] == pytest.approx(0.11)  # floor + 0.01


def test_empty_imps_raises(handler):
    with pytest.raises(ValueError):
        _decide(handler, _resp(imps=[]))


def test_call_routes_poison_to_dlq_and_keeps_good_messages(handler):
    good1 = FakeMsg(_dumps(_resp("rid-a")), key=b"rid-a", offset=10)
    poison = FakeMsg(b"{not json", key=b"bad", offset=11, headers=[("trace", b"t1")])
    good2 = FakeMsg(_dumps(_resp("rid-b")), key=b"rid-b", offset=12)
    records = handler([good1, poison, good2])
    dlq = [r for r in records if r.topic == "bid_responses.dlq"]
    outs = [r for r in records if r.topic == "outcomes"]
    assert len(dlq) == 1
    assert len(outs) == 6
    assert [r.key for r in outs] == ["rid-a"] * 3 + ["rid-b"] * 3
    assert {orjson.loads(r.value)["imp_id"] for r in outs} == {"1", "2", "3"}
    d = dlq[0]
    assert d.key == b"bad"
    assert d.value == b"{not json"
    headers = dict(d.headers)
    assert headers["trace"] == b"t1"
    assert headers[m.H_REASON].startswith(b"cannot run auction")
    assert headers[m.H_SOURCE_OFFSET] == b"11"
    assert headers[m.H_SOURCE_PARTITION] == b"0"
    assert headers[m.H_SOURCE_TOPIC] == b"bid_responses"
    assert headers[m.H_SERVICE] == b"auctioneer"


@pytest.mark.parametrize(
    "value",
    [None, b"[1,2]", orjson.dumps({"v": 2, "rid": "x", "imps": []}),
     orjson.dumps({"v": 1, "rid": "x", "imps": []}), orjson.dumps({"v": 1, "imps": []})],
)
def test_each_poison_kind_is_one_dead_letter(handler, value):
    records = handler([FakeMsg(value, offset=3)])
    assert len(records) == 1
    assert records[0].topic == "bid_responses.dlq"
    assert dict(records[0].headers)[m.H_SOURCE_OFFSET] == b"3"
