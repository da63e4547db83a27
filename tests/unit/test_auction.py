"""Auction rules: first/second price, floors, ties, threshold strategy."""

import random

import pytest

from ingest_services.auctioneer.auction import (
    LOSS_BELOW_FLOOR,
    LOSS_OUTBID,
    LOSS_WON,
    run_auction,
    threshold_auction,
)


def test_first_price_clears_at_bid():
    d = run_auction(1.5, 0.5, 1, [0.7, 1.2])
    assert d.outcome == "won"
    assert d.clearing_price == 1.5
    assert d.loss_reason == LOSS_WON
    assert d.competitor_price == 1.2


def test_second_price_pays_best_competitor_plus_increment():
    d = run_auction(1.5, 0.5, 2, [0.7, 1.2, 0.3])
    assert d.outcome == "won"
    assert d.clearing_price == pytest.approx(1.21)
    assert d.competitor_price == 1.2


def test_second_price_floor_dominates_low_competitor():
    # competitor 0.6 is above floor 0.5: runner-up is 0.6
    assert run_auction(1.0, 0.5, 2, [0.6]).clearing_price == pytest.approx(0.61)
    # only competitor is below the floor: pays floor + 0.01
    d = run_auction(1.0, 0.8, 2, [0.79])
    assert d.outcome == "won"
    assert d.clearing_price == pytest.approx(0.81)
    assert d.competitor_price is None


def test_second_price_no_competitor_pays_floor_plus_increment():
    d = run_auction(1.0, 0.4, 2, [])
    assert d.clearing_price == pytest.approx(0.41)
    assert d.competitor_price is None


def test_second_price_capped_at_bid():
    d = run_auction(1.0, 1.0, 2, [])  # floor + 0.01 > bid
    assert d.outcome == "won"
    assert d.clearing_price == 1.0
    d = run_auction(1.0, 0.5, 2, [0.995])
    assert d.clearing_price == 1.0


def test_second_price_zero_floor_no_competitor():
    d = run_auction(0.35, 0.0, 2, [])
    assert d.clearing_price == pytest.approx(0.01)


def test_below_floor_loses_with_100():
    d = run_auction(0.49, 0.5, 2, [0.1])
    assert d.outcome == "lost"
    assert d.clearing_price is None
    assert d.loss_reason == LOSS_BELOW_FLOOR == 100


def test_outbid_loses_with_102():
    d = run_auction(1.0, 0.5, 2, [1.01])
    assert d.outcome == "lost"
    assert d.loss_reason == LOSS_OUTBID == 102
    assert d.clearing_price is None
    assert d.competitor_price == 1.01


@pytest.mark.parametrize("at", [1, 2])
def test_tie_goes_to_market(at):
    d = run_auction(1.0, 0.5, at, [1.0])
    assert d.outcome == "lost"
    assert d.loss_reason == 102


def test_competitors_below_floor_ignored():
    d = run_auction(1.2, 1.0, 1, [0.99, 0.2])
    assert d.outcome == "won"
    assert d.competitor_price is None
    assert d.clearing_price == 1.2
    d = run_auction(1.2, 1.0, 2, [0.99, 0.5])
    assert d.outcome == "won"
    assert d.competitor_price is None
    assert d.clearing_price == pytest.approx(1.01)


@pytest.mark.parametrize("at", [500, 501, 999])
def test_exchange_specific_at_is_first_price(at):
    d = run_auction(1.5, 0.5, at, [0.7])
    assert d.outcome == "won"
    assert d.clearing_price == 1.5


def test_threshold_auction_seeded():
    rng = random.Random(7)
    expected = random.Random(7)
    wins = 0
    for _ in range(200):
        d = threshold_auction(1.0, 0.5, 0.6, 0.3, rng)
        won = expected.random() < 0.3
        assert d.outcome == ("won" if won else "lost")
        if won:
            wins += 1
            assert d.clearing_price == 1.0
            assert d.loss_reason == 0
        else:
            assert d.loss_reason == 102
            assert d.clearing_price is None
    assert 30 < wins < 90


def test_threshold_auction_rules():
    rng = random.Random(1)
    assert threshold_auction(0.4, 0.5, 0.1, 1.0, rng).loss_reason == 100
    assert threshold_auction(0.55, 0.5, 0.6, 1.0, rng).loss_reason == 102  # below threshold
    assert threshold_auction(0.6, 0.5, 0.6, 1.0, rng).outcome == "won"  # at threshold
    assert threshold_auction(5.0, 0.5, 0.6, 0.0, rng).outcome == "lost"
