"""Bidder pricing: CPM tiers, media multipliers, floors in foreign currencies, bid currency."""

import msgspec
import orjson
import pytest

from ingest_services.bidder import pricing
from ingest_services.bidder.pricing import MEDIA_MULTIPLIER, USD_PER_UNIT, ImpBid, base_cpm
from ingest_services.contracts import messages as m
from ingest_services.contracts.openrtb import BidRequest, Imp

# The bidder prices decoded contracts; these tests write imps as dicts, with empty media
# objects filled in to their smallest valid form.
_MEDIA = {"video": {"mimes": ["video/mp4"]}, "audio": {"mimes": ["audio/mp4"]},
          "native": {"request": "{}"}}


def _imp(d: dict) -> Imp:
    return msgspec.convert({k: _MEDIA.get(k, v) if v == {} else v for k, v in d.items()}, Imp)


def price_imp(imp: dict, score, cur):
    return pricing.price_imp(_imp(imp), score, cur)


def media_of(imp: dict) -> str:
    return pricing.media_of(_imp(imp))


def bid_currency(request: dict):
    return pricing.bid_currency(msgspec.convert(
        {"id": "r", "imp": [{"id": "1", "banner": {}}], **request}, BidRequest))


def _wire(msg) -> dict:
    return orjson.loads(m.encode(msg))


@pytest.mark.parametrize(
    ("score", "cpm"),
    [
        (None, 0.35),
        (1.0, 1.20),
        (0.9001, 1.20),
        (0.9, 0.85),  # strictly greater than 0.9 for the top tier
        (0.8999, 0.85),
        (0.7, 0.85),
        (0.6999, 0.60),
        (0.5, 0.60),
        (0.4999, 0.35),
        (0.0, 0.35),
    ],
)
def test_base_cpm_tiers_at_and_around_boundaries(score, cpm):
    assert base_cpm(score) == cpm


@pytest.mark.parametrize(
    ("imp", "media"),
    [
        ({"id": "1", "banner": {}}, "banner"),
        ({"id": "1", "native": {"request": "{}"}}, "native"),
        ({"id": "1", "audio": {}}, "audio"),
        ({"id": "1", "video": {}}, "video"),
        ({"id": "1", "banner": {}, "video": {}}, "video"),
        ({"id": "1", "banner": {}, "native": {}}, "native"),
        ({"id": "1", "native": {}, "audio": {}}, "audio"),
        ({"id": "1", "banner": {}, "native": {}, "audio": {}, "video": {}}, "video"),
        ({"id": "1", "video": None, "banner": {}}, "banner"),  # only objects count
    ],
)
def test_media_precedence(imp, media):
    assert media_of(imp) == media


def test_an_imp_without_media_never_reaches_pricing():
    with pytest.raises(msgspec.ValidationError, match="at least one of banner"):
        _imp({"id": "1"})


@pytest.mark.parametrize("media", ["banner", "native", "audio", "video"])
def test_media_multiplier_applied_to_bid(media):
    b = price_imp({"id": "7", media: {}}, 0.95, "USD")
    assert b.media == media
    assert b.price_usd == round(1.20 * MEDIA_MULTIPLIER[media], 4)
    assert b.price == b.price_usd
    assert b.cur == "USD"
    assert b.nobid_reason is None


def test_multipliers_values():
    assert MEDIA_MULTIPLIER == {"video": 2.5, "audio": 1.5, "native": 1.3, "banner": 1.0}


def test_gbp_floor_converted_to_usd_blocks_banner_bid():
    b = price_imp({"id": "1", "banner": {}, "bidfloor": 5.0, "bidfloorcur": "GBP"}, 0.95, "USD")
    assert b.price is None
    assert b.price_usd is None
    assert b.nobid_reason == "below_floor"
    assert b.floor_usd == pytest.approx(5.0 * USD_PER_UNIT["GBP"])


def test_foreign_floor_that_would_pass_in_usd_is_below_floor_after_conversion():
    # 1.0 USD floor: 1.20 banner bid clears; 1.0 GBP = 1.27 USD: it does not.
    usd = price_imp({"id": "1", "banner": {}, "bidfloor": 1.0}, 0.95, "USD")
    gbp = price_imp({"id": "1", "banner": {}, "bidfloor": 1.0, "bidfloorcur": "GBP"}, 0.95, "USD")
    assert usd.price_usd == 1.20
    assert gbp.nobid_reason == "below_floor"
    # and a JPY floor is far cheaper than the same number of dollars
    jpy = price_imp({"id": "1", "banner": {}, "bidfloor": 100, "bidfloorcur": "JPY"}, 0.95, "USD")
    assert jpy.floor_usd == pytest.approx(0.67)
    assert jpy.price_usd == 1.20


def test_bid_exactly_at_floor_is_a_bid():
    # 4.8 PLN * 0.25 = 1.20 USD, exactly the top-tier banner bid.
    b = price_imp({"id": "1", "banner": {}, "bidfloor": 4.8, "bidfloorcur": "PLN"}, 0.95, "USD")
    assert b.floor_usd == 1.20
    assert b.price_usd == 1.20
    assert b.nobid_reason is None
    usd = price_imp({"id": "1", "banner": {}, "bidfloor": 0.35}, None, "USD")
    assert usd.price_usd == 0.35
    just_above = price_imp({"id": "1", "banner": {}, "bidfloor": 0.3501}, None, "USD")
    assert just_above.nobid_reason == "below_floor"


def test_unknown_floor_currency():
    b = price_imp({"id": "1", "banner": {}, "bidfloor": 0.1, "bidfloorcur": "XYZ"}, 0.95, "USD")
    assert b.price is None
    assert b.nobid_reason == "unsupported_floor_currency"


def test_missing_floor_means_zero_usd_floor():
    b = price_imp({"id": "1", "video": {}}, None, "USD")
    assert b.floor_usd == 0.0
    assert b.price_usd == round(0.35 * 2.5, 4)


@pytest.mark.parametrize(
    ("request_", "cur"),
    [
        ({}, "USD"),
        ({"cur": []}, "USD"),
        ({"cur": ["USD"]}, "USD"),
        ({"cur": ["GBP"]}, "GBP"),
        ({"cur": ["GBP", "USD"]}, "USD"),
        ({"cur": ["ZZZ", "EUR", "GBP"]}, "EUR"),
        ({"cur": ["ZZZ"]}, None),
    ],
)
def test_bid_currency(request_, cur):
    assert bid_currency(request_) == cur


def test_price_converted_to_request_currency():
    req = {"cur": ["GBP"], "imp": [{"id": "1", "banner": {}}]}
    cur = bid_currency(req)
    b = price_imp(req["imp"][0], 0.95, cur)
    assert b.cur == "GBP"
    assert b.price_usd == 1.20
    assert b.price == round(1.20 / 1.27, 4) == 0.9449


def test_unsupported_request_currency_is_nobid():
    req = {"cur": ["ZZZ"], "imp": [{"id": "1", "banner": {}}]}
    b = price_imp(req["imp"][0], 0.95, bid_currency(req))
    assert b.price is None
    assert b.nobid_reason == "unsupported_currency"


def test_pricing_is_deterministic():
    imp = {"id": "3", "native": {}, "bidfloor": 0.5, "bidfloorcur": "EUR"}
    results = {price_imp(dict(imp), 0.73, "EUR") for _ in range(20)}
    assert len(results) == 1


def test_as_message_with_bid():
    b = price_imp({"id": "9", "video": {}}, 0.95, "USD")
    msg = _wire(b.as_message("IAB13"))
    assert msg == {
        "imp_id": "9",
        "media": "video",
        "floor_usd": 0.0,
        "bid": {
            "price": 3.0,
            "cur": "USD",
            "price_usd": 3.0,
            "crid": "cr-video-iab13",
            "interest": "IAB13",
        },
    }
    assert "nobid_reason" not in msg


def test_as_message_generic_creative_without_interest():
    msg = _wire(price_imp({"id": "9", "banner": {}}, None, "USD").as_message(None))
    assert msg["bid"]["crid"] == "cr-banner-generic"
    assert msg["bid"]["interest"] is None


def test_as_message_nobid():
    b = ImpBid("2", "banner", 6.35, nobid_reason="below_floor")
    assert _wire(b.as_message("IAB1")) == {
        "imp_id": "2",
        "media": "banner",
        "floor_usd": 6.35,
        "bid": None,
        "nobid_reason": "below_floor",
    }
