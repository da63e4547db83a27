"""bench.service_memory's fit: growth per million messages from the round-end samples after
round 1, and per idle hour from each pause (pure arithmetic on planted samples)."""

from bench.service_memory import SERVICES, figures


def _samples(per_million: float, idle_per_s: float) -> dict:
    rss = {name: 50.0 for name in SERVICES}
    samples = [{"round": 0, "phase": "start", "t": 0.0, "messages": 0, "rss": dict(rss)}]
    t = 0.0
    for r in range(1, 6):
        t += 10
        bidder = 100.0 + (0 if r == 1 else per_million * r * 0.2)  # round 1: warm-up jump
        samples.append({"round": r, "phase": "drained", "t": t, "messages": r * 200_000,
                        "rss": {**rss, "bidder": bidder}})
        t += 30
        samples.append({"round": r, "phase": "idle", "t": t, "messages": r * 200_000,
                        "rss": {**rss, "bidder": bidder + 30 * idle_per_s}})
    return {"rounds": 5, "per_round": 200_000, "idle_s": 30.0, "samples": samples}


def test_a_planted_leak_is_found_per_million_and_the_warm_up_is_left_out():
    figs = figures(_samples(per_million=8.0, idle_per_s=0.0))
    assert abs(figs["bidder"]["mib_per_million_messages"] - 8.0) < 1e-9
    assert abs(figs["bidder"]["mib_per_hour_at_soak_rate"] - 8.0 * 0.72) < 1e-9
    assert figs["bidder"]["after_round1_mib"] == 100.0
    assert figs["auctioneer"]["mib_per_million_messages"] == 0.0


def test_idle_drift_is_per_hour_of_pause():
    figs = figures(_samples(per_million=0.0, idle_per_s=1 / 3600))
    assert abs(figs["bidder"]["mib_per_hour_idle"] - 1.0) < 1e-9
    assert figs["bidder"]["mib_per_million_messages"] == 0.0
