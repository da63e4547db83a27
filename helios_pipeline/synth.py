"""Synthetic OpenRTB 2.6 traffic with a realistic mix, for load tests and the demo.

Mostly web banner traffic, with video, native and some audio; app and a little DOOH; one to
three imps; log-normal floors in a few currencies; most users known to the profile store,
some unknown, some anonymous. Deterministic for a given seed.
"""

from __future__ import annotations

import random

from ingest_services.profiles.seed import IAB_CATEGORIES, user_id

DOMAINS = ["news.example.com", "sports.example.net", "recipes.example.org",
           "techdaily.example.com", "travelnow.example.com", "finance.example.io",
           "games.example.com", "weather.example.net"]
BUNDLES = ["com.example.puzzle", "com.example.runner", "com.example.news"]
COUNTRIES = ["USA", "GBR", "DEU", "FRA", "ESP", "BRA", "JPN"]
SIZES = [(300, 250), (728, 90), (320, 50), (160, 600), (300, 600)]


def _imp(rng: random.Random, idx: int) -> dict:
    kind = rng.choices(("banner", "video", "native", "audio"), (60, 20, 15, 5))[0]
    imp: dict = {"id": str(idx + 1), "secure": 1}
    if kind == "banner":
        w, h = rng.choice(SIZES)
        imp["banner"] = {"w": w, "h": h, "format": [{"w": w, "h": h}]}
    elif kind == "video":
        imp["video"] = {"mimes": ["video/mp4"], "minduration": 5, "maxduration": 30,
                        "protocols": [2, 3, 5, 6], "w": 640, "h": 360}
    elif kind == "native":
        imp["native"] = {"request": '{"ver":"1.2","assets":[{"id":1,"title":{"len":90}}]}',
                         "ver": "1.2"}
    else:
        imp["audio"] = {"mimes": ["audio/mp4"], "minduration": 5, "maxduration": 30}
    if rng.random() < 0.8:
        imp["bidfloor"] = round(rng.lognormvariate(-1.2, 0.7), 4)
        imp["bidfloorcur"] = rng.choices(("USD", "EUR", "GBP"), (80, 12, 8))[0]
    return imp


def make_request(rng: random.Random, request_id: str, users: int) -> dict:
    req: dict = {
        "id": request_id,
        "at": rng.choices((1, 2), (40, 60))[0],
        "tmax": 120,
        "imp": [_imp(rng, i) for i in range(rng.choices((1, 2, 3), (75, 18, 7))[0])],
        "device": {"devicetype": rng.choice((1, 2, 4, 5)), "ua": "Mozilla/5.0",
                   "geo": {"country": rng.choice(COUNTRIES)}},
        "regs": {"gdpr": rng.choice((0, 1))},
    }
    place = rng.choices(("site", "app"), (80, 20))[0]
    if place == "site":
        domain = rng.choice(DOMAINS)
        req["site"] = {"id": domain, "domain": domain, "page": f"https://{domain}/",
                       "cat": [rng.choice(IAB_CATEGORIES)],
                       "publisher": {"id": f"pub-{domain.split('.')[0]}"}}
    else:
        bundle = rng.choice(BUNDLES)
        req["app"] = {"id": bundle, "bundle": bundle, "publisher": {"id": "pub-apps"}}
    r = rng.random()
    if r < 0.85 and users > 0:  # known users, with some unknown ids beyond the seeded range
        req["user"] = {"id": user_id(rng.randrange(int(users * 1.1) + 1))}
    elif r < 0.95:
        req["user"] = {"id": f"anon-{rng.getrandbits(40):x}"}
    return req
