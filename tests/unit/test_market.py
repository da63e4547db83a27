"""The simulated open market: deterministic streams, log-normal competitors, diurnal factor."""

import statistics

import pytest

from ingest_services.auctioneer.market import (
    MEDIA_FACTOR,
    SEGMENT_MEDIAN_CPM,
    MarketModel,
    hour_factor,
)


def _draws(rng, n=5):
    return [rng.random() for _ in range(n)]


def test_rng_deterministic():
    a = MarketModel(42, 3)
    b = MarketModel(42, 3)
    assert _draws(a.rng("r1", "1")) == _draws(b.rng("r1", "1"))


def test_rng_differs_across_request_imp_seed():
    base = _draws(MarketModel(42, 3).rng("r1", "1"))
    assert _draws(MarketModel(42, 3).rng("r2", "1")) != base
    assert _draws(MarketModel(42, 3).rng("r1", "2")) != base
    assert _draws(MarketModel(43, 3).rng("r1", "1")) != base
    # the separator keeps ("r1", "12") and ("r11", "2") apart
    assert _draws(MarketModel(42, 3).rng("r1", "12")) != _draws(MarketModel(42, 3).rng("r11", "2"))


@pytest.mark.parametrize("n", [0, 1, 3, 10])
def test_competing_bids_length_and_positive(n):
    m = MarketModel(1, n)
    bids = m.competing_bids(m.rng("r", "1"), "IAB3", "banner", 12)
    assert len(bids) == n
    assert all(b > 0 for b in bids)


def test_competing_bids_reproducible():
    m = MarketModel(5, 4)
    assert m.competing_bids(m.rng("x", "1"), "IAB1", "video", 3) == m.competing_bids(
        m.rng("x", "1"), "IAB1", "video", 3
    )


@pytest.mark.parametrize(
    ("segment", "media", "hour"),
    [("IAB13", "banner", 20), ("IAB3", "video", 8), ("unknown", "native", 14),
     ("not-a-segment", "audio", 2)],
)
def test_median_matches_model(segment, media, hour):
    m = MarketModel(9, 1)
    xs = [m.competing_bids(m.rng(f"r{i}", "1"), segment, media, hour)[0] for i in range(4000)]
    seg = SEGMENT_MEDIAN_CPM.get(segment, SEGMENT_MEDIAN_CPM["unknown"])
    expected = seg * MEDIA_FACTOR[media] * hour_factor(hour)
    assert statistics.median(xs) == pytest.approx(expected, rel=0.10)


def test_hour_factor_peak_and_trough():
    assert hour_factor(20) == pytest.approx(1.2)
    assert hour_factor(8) == pytest.approx(0.8)
    values = [hour_factor(h) for h in range(24)]
    assert max(values) == pytest.approx(1.2)
    assert values.index(max(values)) == 20
    assert values.index(min(values)) == 8
    assert all(0.8 - 1e-9 <= v <= 1.2 + 1e-9 for v in values)


def test_hash_stream_is_keyed_by_its_key_alone_across_blocks():
    from ingest_services.auctioneer.market import HashStream

    a, b = HashStream(b"42\x1fr1\x1f1"), HashStream(b"42\x1fr1\x1f1")
    xs = [a.random() for _ in range(20)]  # past the first 8-draw block
    assert xs == [b.random() for _ in range(20)]
    assert len(set(xs)) == 20 and all(0.0 <= x < 1.0 for x in xs)
    assert xs[:8] != xs[8:16]  # blocks differ


def test_hash_stream_is_uniform():
    from ingest_services.auctioneer.market import HashStream

    xs = [HashStream(f"k{i}".encode()).random() for i in range(20000)]
    assert statistics.fmean(xs) == pytest.approx(0.5, abs=0.01)
    deciles = [sum(1 for x in xs if k / 10 <= x < (k + 1) / 10) for k in range(10)]
    assert all(1800 <= d <= 2200 for d in deciles)


def test_same_request_same_competitors_in_another_process():
    """Replay determinism does not rest on anything in the process (PYTHONHASHSEED)."""
    import os
    import subprocess
    import sys

    code = ("from ingest_services.auctioneer.market import MarketModel as M; m = M(42, 5); "
            "print(m.competing_bids(m.rng('req-9', '2'), 'IAB3', 'video', 20))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout
            for seed in ("1", "2")}
    m = MarketModel(42, 5)
    assert outs == {f"{m.competing_bids(m.rng('req-9', '2'), 'IAB3', 'video', 20)}\n"}
