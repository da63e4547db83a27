"""Load generator helpers: percentiles, the request body stream and its distributions
(docs/traffic.md), the diurnal rate schedule."""

import random
import statistics
from collections import Counter

import orjson
import pytest

from helios_pipeline.loadgen import Schedule, Traffic, diurnal_factor, make_request, percentiles
from helios_pipeline.synth import world
from ingest_services.contracts import openrtb
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
    for i in range(2500):  # crosses a generation block
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


# --- Distributions (docs/traffic.md), on one sample of 50,000 requests ----------------------

N = 50_000
USERS = 10_000


@pytest.fixture(scope="module")
def sample() -> list[dict]:
    t = Traffic(users=USERS, seed=7, corpus=[])
    return [t.request(i) for i in range(N)]


def publisher(req: dict) -> str:
    if "site" in req:
        return req["site"]["domain"]
    if "app" in req:
        return req["app"]["bundle"]
    return req["dooh"]["id"]


def media(imp: dict) -> str:
    return next(m for m in openrtb.MEDIA if m in imp)


def test_every_request_in_the_sample_passes_the_gateway_contract(sample):
    for req in sample[:20_000]:
        assert openrtb.check(orjson.dumps(req))[1] == [], req


def test_make_request_is_valid_for_any_user_count():
    rng = random.Random(4)
    for i in range(500):
        for users in (0, 1, 50, 100_000):
            req = make_request(rng, f"r{i}", users)
            assert openrtb.check(orjson.dumps(req))[1] == [], req
            assert req["id"] == f"r{i}"


def test_make_request_deterministic_for_a_seeded_rng():
    a, b = random.Random(12), random.Random(12)
    assert [make_request(a, "x", 300) for _ in range(200)] == \
        [make_request(b, "x", 300) for _ in range(200)]


def test_body_is_a_function_of_seed_and_index_not_of_call_order():
    a, b = Traffic(500, 4, []), Traffic(500, 4, [])
    idx = [0, 1, 5000, 255, 256, 99_999, 3]
    got_a = {i: orjson.loads(a.body(i)) for i in idx}
    got_b = {i: orjson.loads(b.body(i)) for i in reversed(idx)}
    for i in idx:
        assert {**got_a[i], "id": ""} == {**got_b[i], "id": ""}
    assert Traffic(500, 5, []).request(0) != a.request(0)  # another seed, other traffic


def test_long_tail_of_publishers_with_a_zipf_head(sample):
    pubs = Counter(publisher(r) for r in sample)
    domains_and_bundles = [p for p in pubs if p.count(".") or p.isdigit()]
    assert len(domains_and_bundles) >= 1000
    ranked = [c for _, c in pubs.most_common()]
    assert 0.01 <= ranked[0] / N <= 0.10  # a big head, not a monopoly
    assert 0.08 <= sum(ranked[:10]) / N <= 0.35
    assert sum(c == 1 for c in ranked) >= 300  # and a long tail seen once
    assert ranked[0] > 2 * ranked[9] > 2 * ranked[99]  # decreasing like a power law


def test_no_template_cycle(sample):
    """The issue: 697 of 704 daily_stats rows had request counts divisible by 30."""
    counts = Counter(publisher(r) for r in sample)
    for cycle in (2, 3, 5, 30):
        assert sum(c % cycle == 0 for c in counts.values()) < 0.6 * len(counts)
    assert len({orjson.dumps({**r, "id": ""}) for r in sample}) > 0.99 * N


def test_dozens_of_countries_devices_and_os_versions(sample):
    countries = Counter(r["device"]["geo"]["country"] for r in sample)
    assert len(countries) >= 30
    assert 0.2 <= countries["USA"] / N <= 0.5
    devtypes = Counter(r["device"]["devicetype"] for r in sample)
    assert set(devtypes) >= {2, 3, 4, 5, 8}
    assert len({(r["device"]["os"], r["device"].get("osv")) for r in sample}) >= 15
    gdpr = [r for r in sample if r["device"]["geo"]["country"] in ("DEU", "FRA", "GBR")]
    assert gdpr and all(r["regs"]["gdpr"] == 1 for r in gdpr)


def test_site_app_and_dooh_mix(sample):
    kinds = Counter(next(k for k in ("site", "app", "dooh") if k in r) for r in sample)
    assert 0.6 <= kinds["site"] / N <= 0.8
    assert 0.2 <= kinds["app"] / N <= 0.35
    assert 0.005 <= kinds["dooh"] / N <= 0.03


def test_media_mix_and_valid_media_objects(sample):
    imps = [imp for r in sample for imp in r["imp"]]
    mix = Counter(media(imp) for imp in imps)
    share = {m: mix[m] / len(imps) for m in openrtb.MEDIA}
    assert 0.45 <= share["banner"] <= 0.75
    assert 0.10 <= share["video"] <= 0.30
    assert 0.05 <= share["native"] <= 0.20
    assert 0.02 <= share["audio"] <= 0.12
    for imp in imps:
        for m in ("video", "audio"):
            if m in imp:
                assert imp[m]["mimes"] and imp[m]["minduration"] <= imp[m]["maxduration"]
        if "native" in imp:
            assert orjson.loads(imp["native"]["request"])["assets"]
    sizes = Counter(len(r["imp"]) for r in sample)
    assert sizes[1] > sizes[2] > sizes[3] > 0  # mostly one imp, sometimes more


def test_auction_type_currency_deals(sample):
    at = Counter(r["at"] for r in sample)
    assert 0.7 <= at[2] / N <= 0.9 and at[1] > 0
    cur = Counter(tuple(r.get("cur", ())) for r in sample)
    assert cur[("USD",)] / N >= 0.7
    imps = [imp for r in sample for imp in r["imp"]]
    deals = [imp["pmp"]["deals"] for imp in imps if "pmp" in imp]
    assert 0.02 <= len(deals) / len(imps) <= 0.15
    assert all(d["id"] and d["bidfloor"] > 0 for ds in deals for d in ds)


def test_known_users_with_repeat_visits(sample):
    users = Counter(r.get("user", {}).get("id") for r in sample)
    known = {u: c for u, c in users.items() if u and u[0] == "u" and u[1:].isdigit()
             and int(u[1:]) < USERS}
    assert sum(known.values()) / N >= 0.90  # ≤ 10 % without a known user
    assert users[None] / N <= 0.08 and len(users) - len(known) > 100  # some unknown ids
    assert len(known) >= 0.6 * USERS  # most of the profile set is seen ...
    assert max(known.values()) >= 50  # ... some users very often
    assert max(known.values()) / N <= 0.01  # (but nobody is the whole traffic)
    assert statistics.median(known.values()) >= 2


def test_a_known_user_keeps_their_device_and_country(sample):
    seen: dict[tuple, set] = {}
    for r in sample:
        uid = r.get("user", {}).get("id", "")
        if "site" in r and uid[1:].isdigit() and int(uid[1:]) < USERS:
            d = r["device"]
            seen.setdefault(uid, set()).add((d["geo"]["country"], d["ua"]))
    assert len(seen) > 1000 and all(len(v) == 1 for v in seen.values())


def test_floors_are_stable_per_placement_and_vary_across_placements(sample):
    by_tag: dict[str, list[float]] = {}
    for r in sample:
        for imp in r["imp"]:
            if "bidfloor" in imp and imp.get("bidfloorcur", "USD") == "USD":
                by_tag.setdefault(imp["tagid"], []).append(imp["bidfloor"])
    medians = [statistics.median(v) for v in by_tag.values()]
    assert len(by_tag) >= 1000
    assert max(medians) / min(medians) >= 20  # placements differ a lot
    busy = [v for v in by_tag.values() if len(v) >= 30]
    assert busy
    for v in busy:  # one placement: its floor plus noise (±15 %)
        assert max(v) / min(v) <= 1.5
        assert len(set(v)) > 1


def test_world_is_built_once_and_has_thousands_of_placements():
    w = world()
    assert w is world()
    assert sum(len(p.placements) for kind in w.pubs for p in kind) >= 10_000
    names = [p.name for kind in w.pubs for p in kind]
    assert len(names) == len(set(names))


# --- Diurnal rate ------------------------------------------------------------------------------


def test_diurnal_curve_has_mean_one_an_evening_peak_and_a_night_trough():
    xs = [diurnal_factor(h / 60) for h in range(24 * 60)]
    assert statistics.fmean(xs) == pytest.approx(1.0, abs=1e-9)
    assert min(xs) > 0.3 and max(xs) < 1.7
    peak = max(range(len(xs)), key=xs.__getitem__) / 60
    trough = min(range(len(xs)), key=xs.__getitem__) / 60
    assert 17 <= peak <= 21 and 7 <= trough <= 11


def test_flat_schedule_is_exactly_rate_times_duration():
    s = Schedule(300, 4)
    assert s.total == 1200 and s.count(0) == 1 and s.count(2) == 601 and s.count(9) == 1200
    assert s.at(600) == 2.0


def test_compressed_day_keeps_the_mean_rate_and_follows_the_curve():
    s = Schedule(300, 24, diurnal="day", start_hour=0.0)
    assert s.total == pytest.approx(300 * 24, abs=1)
    # one second per hour: the rate in second h is 300 × diurnal_factor(h + 0.5)
    for h in (4, 9, 19):
        assert s.count(h + 1) - s.count(h) == pytest.approx(300 * diurnal_factor(h + 0.5),
                                                            rel=0.02)
    ks = list(range(0, s.total, 97))
    times = [s.at(k) for k in ks]
    assert times == sorted(times)
    assert all(s.count(t) >= k for k, t in zip(ks, times, strict=True))


def test_clock_schedule_follows_the_time_of_day():
    night, evening = Schedule(100, 10, "clock", start_hour=9.0), Schedule(100, 10, "clock",
                                                                            start_hour=20.0)
    assert night.total == pytest.approx(1000 * diurnal_factor(9.0), abs=2)
    assert evening.total == pytest.approx(1000 * diurnal_factor(20.0), abs=2)
    with pytest.raises(ValueError):
        Schedule(1, 1, diurnal="weekly")
