"""Synthetic OpenRTB 2.6 traffic with realistic, seeded distributions (docs/traffic.md).

A fixed *world* (built once from ``WORLD_SEED``) holds the supply: thousands of sites and
apps and a few DOOH networks with syllable-made names, publisher ids, home countries,
floor currencies, supply chains, and placements (publisher × tag) each with a media type,
a size, a stable floor and sometimes PMP deals. Each request then draws, from the caller's
``random.Random``: the inventory kind, a publisher from a Zipf table, one to four of its
placements, a user from a Zipf over the seeded profile set (so users come back), the
user's stable device and country, the auction type, currencies and per-request floor noise.

Nested context objects (site, app, device, source, media objects, deals) are shared
between requests for speed: copy them before mutating. Deterministic for a given seed.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

import orjson

from ingest_services.profiles.seed import IAB_CATEGORIES, user_id

WORLD_SEED = 20_250_611  # the supply side is the same for every traffic seed

# --- Parameters (documented in docs/traffic.md) ------------------------------------------------

N_SITES, N_APPS, N_DOOH = 4_000, 2_000, 40
KIND_WEIGHTS = (70.0, 28.5, 1.5)  # site, app, dooh: share of requests
PUBLISHER_ZIPF = (1.0, 2.0)  # exponent s, offset q: P(rank r) ∝ 1 / (r + q) ** s
USER_ZIPF = (0.8, 20.0)  # the same shape for user activity over the seeded profiles
KNOWN_USER, UNKNOWN_USER = 0.94, 0.03  # else: no user object (DOOH never has one)
N_IMPS_CUM = list(accumulate((72, 18, 7, 3)))  # 1, 2, 3, 4 imps (capped by placements)
AT_CUM = list(accumulate((80, 20)))  # at = 2 (second price), 1 (first price)
TMAX = (100, 120, 150, 200, 300)
TMAX_CUM = list(accumulate((20, 40, 20, 12, 8)))
CURS = (["USD"], None, ["EUR"], ["USD", "EUR"], ["GBP"])
CURS_CUM = list(accumulate((82, 8, 4, 4, 2)))
NO_FLOOR, DEAL_SHARE = 0.18, 0.08  # placements without a floor; placements with deals

# ISO-3166 alpha-3, share of requests (a rough programmatic-supply split), ccTLD, currency.
COUNTRIES = [
    ("USA", 30.0, "com", "USD"), ("GBR", 6.0, "co.uk", "GBP"), ("DEU", 5.5, "de", "EUR"),
    ("FRA", 4.5, "fr", "EUR"), ("JPN", 4.5, "jp", "JPY"), ("CAN", 3.5, "ca", "CAD"),
    ("BRA", 3.5, "com.br", "BRL"), ("IND", 3.5, "in", "INR"), ("AUS", 2.5, "com.au", "AUD"),
    ("ESP", 2.5, "es", "EUR"), ("ITA", 2.5, "it", "EUR"), ("MEX", 2.2, "com.mx", "USD"),
    ("NLD", 1.8, "nl", "EUR"), ("KOR", 1.5, "co.kr", "USD"), ("IDN", 1.5, "co.id", "USD"),
    ("TUR", 1.2, "com.tr", "USD"), ("POL", 1.2, "pl", "PLN"), ("SWE", 1.0, "se", "SEK"),
    ("CHE", 0.9, "ch", "CHF"), ("BEL", 0.8, "be", "EUR"), ("ARG", 0.8, "com.ar", "USD"),
    ("COL", 0.7, "com.co", "USD"), ("ZAF", 0.7, "co.za", "USD"), ("PHL", 0.8, "ph", "USD"),
    ("THA", 0.7, "co.th", "USD"), ("VNM", 0.6, "vn", "USD"), ("MYS", 0.5, "my", "USD"),
    ("SGP", 0.5, "sg", "USD"), ("ARE", 0.5, "ae", "USD"), ("SAU", 0.6, "sa", "USD"),
    ("NOR", 0.5, "no", "USD"), ("DNK", 0.5, "dk", "EUR"), ("FIN", 0.4, "fi", "EUR"),
    ("AUT", 0.6, "at", "EUR"), ("IRL", 0.4, "ie", "EUR"), ("PRT", 0.5, "pt", "EUR"),
    ("CZE", 0.4, "cz", "EUR"), ("ROU", 0.4, "ro", "EUR"), ("GRC", 0.3, "gr", "EUR"),
    ("HUN", 0.3, "hu", "EUR"), ("CHL", 0.5, "cl", "USD"), ("PER", 0.3, "pe", "USD"),
    ("EGY", 0.3, "com.eg", "USD"), ("NGA", 0.3, "ng", "USD"), ("NZL", 0.3, "co.nz", "AUD"),
    ("ISR", 0.3, "co.il", "USD"), ("TWN", 0.6, "tw", "USD"), ("HKG", 0.4, "hk", "USD"),
    ("UKR", 0.3, "ua", "USD"), ("CHN", 0.4, "cn", "CNY"),
]
GDPR = {"GBR", "DEU", "FRA", "ESP", "ITA", "NLD", "POL", "SWE", "CHE", "BEL", "NOR", "DNK",
        "FIN", "AUT", "IRL", "PRT", "CZE", "ROU", "GRC", "HUN"}
LANG = {"USA": "en", "GBR": "en", "CAN": "en", "AUS": "en", "IRL": "en", "NZL": "en",
        "DEU": "de", "AUT": "de", "CHE": "de", "FRA": "fr", "BEL": "fr", "JPN": "ja",
        "BRA": "pt", "PRT": "pt", "ESP": "es", "MEX": "es", "ARG": "es", "COL": "es",
        "CHL": "es", "PER": "es", "ITA": "it", "NLD": "nl", "KOR": "ko", "CHN": "zh",
        "TWN": "zh", "HKG": "zh", "POL": "pl", "SWE": "sv", "TUR": "tr", "IDN": "id"}
JPY_PER_USD = 150.0
# USD per unit, to express a USD floor in the publisher's currency (the bidder's table).
USD_PER = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0067, "CAD": 0.73, "AUD": 0.66,
           "CHF": 1.13, "CNY": 0.14, "INR": 0.012, "BRL": 0.18, "SEK": 0.095, "PLN": 0.25}

# OpenRTB / AdCOM device types: 1 mobile/tablet, 2 PC, 3 CTV, 4 phone, 5 tablet, 8 OOH.
_CHROME = "Mozilla/5.0 ({p}) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v} {m}Safari/537.36"
_SAFARI = ("Mozilla/5.0 ({p}) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/{v} "
           "{m}Safari/604.1")


def _ios(model: str, osv: str, w: int, h: int, dt: int) -> tuple:
    plat = f"{model}; CPU {'iPhone ' if model == 'iPhone' else ''}OS {osv.replace('.', '_')} " \
           f"like Mac OS X"
    return (dt, "iOS", osv, "Apple", model, _SAFARI.format(p=plat, v=osv[:4], m="Mobile/15E148 "),
            w, h)


def _android(make: str, model: str, osv: str, w: int, h: int, dt: int) -> tuple:
    plat = f"Linux; Android {osv}; {model}"
    return (dt, "Android", osv, make, model,
            _CHROME.format(p=plat, v="126.0.0.0", m="Mobile " if dt == 4 else ""), w, h)


# (weight, (devicetype, os, osv, make, model, ua, w, h))
IOS_DEVICES = [
    (14, _ios("iPhone", "17.5.1", 390, 844, 4)), (12, _ios("iPhone", "17.6.1", 393, 852, 4)),
    (10, _ios("iPhone", "18.1", 393, 852, 4)), (8, _ios("iPhone", "18.2", 430, 932, 4)),
    (4, _ios("iPhone", "16.7.10", 375, 667, 4)), (2, _ios("iPhone", "15.8.3", 375, 667, 4)),
    (4, _ios("iPad", "17.6.1", 820, 1180, 5)), (3, _ios("iPad", "18.1", 834, 1194, 5)),
]
ANDROID_DEVICES = [
    (9, _android("Samsung", "SM-S918B", "14", 384, 824, 4)),
    (8, _android("Samsung", "SM-A546B", "14", 384, 854, 4)),
    (6, _android("Samsung", "SM-A155F", "14", 384, 854, 4)),
    (5, _android("Samsung", "SM-A127F", "13", 360, 800, 4)),
    (5, _android("Google", "Pixel 8", "15", 412, 915, 4)),
    (3, _android("Google", "Pixel 7a", "14", 412, 915, 4)),
    (6, _android("Xiaomi", "23129RAA4G", "13", 393, 873, 4)),
    (4, _android("Xiaomi", "M2101K6G", "12", 393, 851, 4)),
    (4, _android("motorola", "moto g54 5G", "14", 412, 915, 4)),
    (3, _android("OPPO", "CPH2581", "14", 412, 915, 4)),
    (2, _android("HUAWEI", "ELS-NX9", "10", 360, 780, 4)),
    (2, _android("Samsung", "SM-G973F", "11", 360, 760, 4)),
    (3, _android("Samsung", "SM-X200", "14", 800, 1280, 5)),
    (1, _android("Lenovo", "TB-X606F", "10", 800, 1280, 5)),
]
DESKTOP_DEVICES = [
    (30, (2, "Windows", "10.0", "", "", _CHROME.format(p="Windows NT 10.0; Win64; x64",
                                                       v="126.0.0.0", m=""), 1920, 1080)),
    (10, (2, "Windows", "11.0", "", "", _CHROME.format(p="Windows NT 10.0; Win64; x64",
                                                       v="127.0.0.0", m=""), 1536, 864)),
    (12, (2, "macOS", "14.5", "Apple", "Macintosh", _SAFARI.format(
        p="Macintosh; Intel Mac OS X 10_15_7", v="17.5", m=""), 1440, 900)),
    (5, (2, "macOS", "15.1", "Apple", "Macintosh", _CHROME.format(
        p="Macintosh; Intel Mac OS X 10_15_7", v="127.0.0.0", m=""), 1728, 1117)),
    (3, (2, "Linux", "", "", "", _CHROME.format(p="X11; Linux x86_64", v="126.0.0.0", m=""),
         1920, 1080)),
    (2, (2, "ChromeOS", "126.0", "Google", "Chromebook", _CHROME.format(
        p="X11; CrOS x86_64 14541.0.0", v="126.0.0.0", m=""), 1366, 768)),
]
CTV_DEVICES = [
    (30, (3, "Roku OS", "13.0", "Roku", "Roku Ultra", "Roku/DVP-13.0 (13.0.0.4140-46)", 1920,
          1080)),
    (20, (3, "Fire OS", "7.6", "Amazon", "AFTKA", "Mozilla/5.0 (Linux; Android 9; AFTKA) "
          "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", 3840, 2160)),
    (18, (3, "Tizen", "7.0", "Samsung", "QN65Q80C", "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) "
          "AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/5.0 TV Safari/537.36", 3840,
          2160)),
    (12, (3, "webOS", "23", "LG", "OLED55C3", "Mozilla/5.0 (Web0S; Linux/SmartTV) "
          "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/94.0 Safari/537.36 WebAppManager",
          3840, 2160)),
    (10, (3, "tvOS", "17.5", "Apple", "AppleTV14,1", "AppleTV14,1/17.5", 3840, 2160)),
    (10, (3, "Android TV", "12", "Google", "Chromecast", "Mozilla/5.0 (Linux; Android 12; "
          "Chromecast) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
          1920, 1080)),
]
DOOH_DEVICES = [
    (3, (8, "Linux", "5.15", "BrightSign", "XT1144", "BrightSign/9.0.110", 1920, 1080)),
    (2, (8, "Android", "11", "Samsung", "QM55B", "Mozilla/5.0 (Linux; Android 11; QM55B)", 1080,
         1920)),
]

# (weight, w, h, extra formats) — IAB standard sizes, by share of banner impressions
BANNER_SIZES = [(30, 300, 250), (15, 728, 90), (15, 320, 50), (6, 160, 600), (8, 300, 600),
                (5, 970, 250), (5, 320, 100), (2, 468, 60), (4, 336, 280), (3, 970, 90),
                (3, 300, 50), (4, 320, 480)]
# (weight, minduration, maxduration, plcmt: 1 instream, 3 interstitial, 4 outstream)
VIDEO_SHAPES = [
    (30, 5, 30, 1), (20, 15, 30, 1), (15, 5, 15, 4), (10, 6, 60, 1), (10, 5, 30, 3),
    (10, 15, 120, 1), (5, 0, 6, 4)]
NATIVE_REQUESTS = [
    '{"ver":"1.2","assets":[{"id":1,"required":1,"title":{"len":90}},{"id":2,"required":1,'
    '"img":{"type":3,"w":1200,"h":627}},{"id":3,"data":{"type":2,"len":140}}]}',
    '{"ver":"1.2","assets":[{"id":1,"required":1,"title":{"len":25}},{"id":2,"img":{"type":1,'
    '"w":80,"h":80}},{"id":3,"data":{"type":12,"len":15}}]}',
    '{"ver":"1.2","plcmttype":1,"assets":[{"id":1,"required":1,"title":{"len":60}},{"id":2,'
    '"required":1,"img":{"type":3,"wmin":300,"hmin":250}}]}',
]
# media mix of placements by inventory kind: banner, video, native, audio
MEDIA_BY_KIND = {0: (68, 17, 13, 2), 1: (50, 25, 11, 14), 2: (62, 38, 0, 0)}
FLOOR_MEDIAN_USD = {"banner": 0.30, "video": 1.60, "native": 0.45, "audio": 0.90}

_ONSET = ["b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p", "pr",
          "qu", "r", "s", "st", "t", "tr", "v", "w", "z", "sh", "bl", "cl", "fl", "sl"]
_NUCLEUS = ["a", "e", "i", "o", "u", "ai", "ea", "io", "ou", "y"]
_CODA = ["", "", "", "n", "r", "l", "s", "x", "m", "t", "nd", "st"]
_TOPICS = ["news", "daily", "times", "post", "hub", "zone", "life", "sport", "sports", "tech",
           "recipes", "travel", "games", "weather", "finance", "health", "auto", "style",
           "home", "music", "movies", "wire", "today", "herald", "digest", "kitchen", "play",
           "pets", "money", "fit", "garden", "cars", "tv", "radio", "mag", "online"]
_APP_WORDS = ["puzzle", "runner", "solitaire", "match", "words", "radio", "podcasts",
              "weather", "scanner", "fitness", "chess", "blast", "merge", "tiles", "stream",
              "music", "news", "recipes", "tracker", "sudoku", "bubble", "farm", "racing"]
_SECTIONS = ["news", "sport", "article", "video", "opinion", "lifestyle", "business",
             "entertainment", "tech", "travel", "food", "world", "local", "health"]
_VENUES = [[1], [2], [101, 102], [103], [201], [301], [401], [601]]
_IMP_IDS = [str(i) for i in range(1, 9)]


def _cum(weights) -> tuple[list[float], float]:
    cum = list(accumulate(weights))
    return cum, cum[-1]


def zipf_weights(n: int, s: float, q: float) -> list[float]:
    """P(rank r) ∝ 1 / (r + q) ** s for r = 1..n (Zipf–Mandelbrot)."""
    return [1.0 / (r + q) ** s for r in range(1, n + 1)]


@dataclass(slots=True)
class Placement:
    base: dict  # the imp without id and bidfloor (shared)
    floor: float | None  # stable floor in ``cur``; each request adds noise
    cur: str
    media: str


@dataclass(slots=True)
class Publisher:
    kind: int  # 0 site, 1 app, 2 dooh
    name: str  # domain, bundle or DOOH network id
    ctx: dict  # site / app / dooh object (site gets a per-request page)
    sections: list[str]
    placements: list[Placement]
    country: int  # index into COUNTRIES
    platform: int  # device table: 0 web, 1 iOS, 2 Android, 3 CTV, 4 DOOH
    source: dict | None
    bcat: list[str] | None


class _Words:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.seen: set[str] = set()

    def word(self, syllables: int) -> str:
        r = self.rng
        return "".join(r.choice(_ONSET) + r.choice(_NUCLEUS) + r.choice(_CODA)
                       for _ in range(syllables))

    def unique(self, make) -> str:
        while True:
            name = make()
            if name not in self.seen:
                self.seen.add(name)
                return name


class World:
    """The supply side: publishers by kind with Zipf traffic, placements, devices."""

    def __init__(self, seed: int = WORLD_SEED):
        rng = random.Random(seed)
        words = _Words(rng)
        self.countries = [c[0] for c in COUNTRIES]
        self.country_cum, self.country_total = _cum([c[1] for c in COUNTRIES])
        self.regs = [self._regs(c) for c in self.countries]
        self.geo = [{"country": c, "type": 2} for c in self.countries]
        self.lang = [LANG.get(c, "en") for c in self.countries]
        tables = [DESKTOP_DEVICES + IOS_DEVICES + ANDROID_DEVICES, IOS_DEVICES,
                  ANDROID_DEVICES, CTV_DEVICES, DOOH_DEVICES]
        # the web mix: desktop 35 %, phones and tablets 65 %
        web = ([(w * 35 / sum(x for x, _ in DESKTOP_DEVICES), d) for w, d in DESKTOP_DEVICES]
               + [(w * 65 / sum(x for x, _ in IOS_DEVICES + ANDROID_DEVICES), d)
                  for w, d in IOS_DEVICES + ANDROID_DEVICES])
        tables[0] = web
        self.devices = [[d for _, d in t] for t in tables]
        self.device_cum = [_cum([w for w, _ in t]) for t in tables]
        self._device_cache: dict[tuple[int, int, int], dict] = {}
        self.kind_cum, self.kind_total = _cum(KIND_WEIGHTS)
        self.pubs: list[list[Publisher]] = [
            [self._site(rng, words, i) for i in range(N_SITES)],
            [self._app(rng, words, i) for i in range(N_APPS)],
            [self._dooh(rng, words, i) for i in range(N_DOOH)],
        ]
        s, q = PUBLISHER_ZIPF
        self.pub_cum = [_cum(zipf_weights(len(p), s, q)) for p in self.pubs]

    @staticmethod
    def _regs(country: str) -> dict:
        if country in GDPR:
            return {"gdpr": 1, "coppa": 0}
        if country == "USA":
            return {"gdpr": 0, "coppa": 0, "us_privacy": "1YNN"}
        return {"gdpr": 0, "coppa": 0}

    def _country(self, rng: random.Random) -> int:
        return bisect(self.country_cum, rng.random() * self.country_total)

    def _publisher_common(self, rng: random.Random, kind: int, name: str, pub_id: str,
                          country: int) -> tuple[dict | None, list[str] | None]:
        source = None
        if rng.random() < 0.6:
            nodes = [{"asi": rng.choice(("helios-ssp.com", "openx.example", "pubmatic.example",
                                         "magnite.example")), "sid": pub_id, "hp": 1}]
            if rng.random() < 0.3:
                nodes.append({"asi": "reseller.example", "sid": f"r-{rng.getrandbits(24):06x}",
                              "hp": 1})
            source = {"schain": {"complete": 1, "ver": "1.0", "nodes": nodes}}
        bcat = None
        if rng.random() < 0.25:
            bcat = sorted(rng.sample(["IAB7-39", "IAB8-18", "IAB8-5", "IAB9-9", "IAB25",
                                      "IAB26", "IAB14-1", "IAB3-7"], rng.randint(1, 4)))
        return source, bcat

    def _placements(self, rng: random.Random, kind: int, pub_id: str, country: int,
                    n: int, app_video: bool = False) -> list[Placement]:
        home = COUNTRIES[country]
        cur = home[3] if rng.random() < 0.6 else "USD"
        premium = rng.lognormvariate(0.0, 0.4)  # a publisher's pricing power
        mix = MEDIA_BY_KIND[kind]
        if app_video:
            mix = (10, 80, 0, 10)
        out = []
        for t in range(n):
            media = rng.choices(("banner", "video", "native", "audio"), mix)[0]
            base: dict = {"tagid": f"{pub_id}-{media[0]}{t + 1}", "secure": 1}
            if media == "banner":
                _, w, h = rng.choices(BANNER_SIZES, [b[0] for b in BANNER_SIZES])[0]
                banner: dict = {"w": w, "h": h, "format": [{"w": w, "h": h}],
                                "pos": rng.choice((1, 1, 3, 4, 0))}
                if (w, h) == (300, 250) and rng.random() < 0.4:
                    banner["format"].append({"w": 336, "h": 280})
                if (w, h) == (320, 480):
                    base["instl"] = 1
                base["banner"] = banner
            elif media == "video":
                _, lo, hi, plcmt = rng.choices(VIDEO_SHAPES, [v[0] for v in VIDEO_SHAPES])[0]
                w, h = (1920, 1080) if app_video else rng.choice(((640, 360), (1280, 720),
                                                                  (640, 480)))
                base["video"] = {"mimes": ["video/mp4", "video/webm"] if rng.random() < 0.5
                                 else ["video/mp4"], "minduration": lo, "maxduration": hi,
                                 "protocols": [2, 3, 5, 6, 7, 8], "w": w, "h": h,
                                 "plcmt": plcmt, "linearity": 1,
                                 "startdelay": 0 if plcmt == 1 else -1}
            elif media == "native":
                base["native"] = {"request": rng.choice(NATIVE_REQUESTS), "ver": "1.2"}
            else:
                base["audio"] = {"mimes": ["audio/mpeg", "audio/mp4"], "minduration": 5,
                                 "maxduration": rng.choice((15, 30, 30, 60)), "feed": 3,
                                 "protocols": [2, 3]}
            floor = None
            if rng.random() >= NO_FLOOR:
                usd = FLOOR_MEDIAN_USD[media] * premium * rng.lognormvariate(0.0, 0.6)
                floor = usd / USD_PER[cur]
                base["bidfloorcur"] = cur
            if rng.random() < DEAL_SHARE:
                deal_floor = (floor or FLOOR_MEDIAN_USD[media] / USD_PER[cur]) * \
                    rng.uniform(1.5, 4.0)
                deals = [{"id": f"DL-{rng.getrandbits(32):08X}",
                          "bidfloor": _round_floor(deal_floor * (1 + 0.25 * k), cur),
                          "bidfloorcur": cur, "at": 1} for k in range(rng.choice((1, 1, 2, 3)))]
                base["pmp"] = {"private_auction": 1 if rng.random() < 0.3 else 0,
                               "deals": deals}
            out.append(Placement(base, floor, cur, media))
        return out

    def _site(self, rng: random.Random, words: _Words, i: int) -> Publisher:
        country = self._country(rng)
        tld = COUNTRIES[country][2] if rng.random() < 0.55 else \
            rng.choices(("com", "net", "org", "io", "tv", "co"), (70, 10, 8, 5, 4, 3))[0]

        def make() -> str:
            w = words.word(rng.choice((1, 2, 2, 3)))
            if rng.random() < 0.6:
                w += rng.choice(_TOPICS)
            return f"{w}.{tld}"

        domain = words.unique(make)
        pub_id = f"p{i:05d}"
        n_cat = rng.choice((1, 1, 2))
        ctx = {"id": f"s{i:05d}", "domain": domain, "name": domain.split(".")[0],
               "cat": rng.sample(IAB_CATEGORIES[:20], n_cat),
               "publisher": {"id": pub_id, "name": domain.split(".")[0].title()},
               "mobile": 0}
        source, bcat = self._publisher_common(rng, 0, domain, pub_id, country)
        n = min(8, 1 + int(rng.expovariate(0.45)))
        return Publisher(0, domain, ctx, rng.sample(_SECTIONS, rng.randint(2, 6)),
                         self._placements(rng, 0, pub_id, country, n), country, 0,
                         source, bcat)

    def _app(self, rng: random.Random, words: _Words, i: int) -> Publisher:
        country = self._country(rng)
        platform = rng.choices((1, 2, 3), (38, 50, 12))[0]
        studio = words.word(rng.choice((1, 2)))
        title = rng.choice(_APP_WORDS)
        if platform == 1:
            bundle = words.unique(lambda: str(rng.randrange(300_000_000, 6_800_000_000)))
            store = f"https://apps.apple.com/app/id{bundle}"
        elif platform == 2:
            bundle = words.unique(lambda: f"com.{words.word(rng.choice((1, 2)))}.{title}")
            store = f"https://play.google.com/store/apps/details?id={bundle}"
        else:
            bundle = words.unique(lambda: rng.choice((str(rng.randrange(10_000, 999_999)),
                                                      f"com.{words.word(2)}.tv")))
            store = f"https://channelstore.roku.com/details/{bundle}"
        pub_id = f"p{N_SITES + i:05d}"
        ctx = {"id": f"a{i:05d}", "name": f"{studio.title()} {title.title()}", "bundle": bundle,
               "storeurl": store, "ver": f"{rng.randint(1, 9)}.{rng.randint(0, 30)}",
               "cat": rng.sample(IAB_CATEGORIES[:20], rng.choice((1, 1, 2))),
               "publisher": {"id": pub_id, "name": studio.title()}}
        if title in ("radio", "podcasts", "music"):  # audio apps sell audio
            placements = self._placements(rng, 1, pub_id, country, rng.randint(1, 3))
            for p in placements[: max(1, len(placements) - 1)]:
                p.base.pop(p.media, None)
                p.base["audio"] = {"mimes": ["audio/mpeg", "audio/mp4"], "minduration": 5,
                                   "maxduration": 30, "feed": 3}
                p.media = "audio"
        else:
            placements = self._placements(rng, 1, pub_id, country, rng.randint(1, 4),
                                          app_video=platform == 3)
        source, bcat = self._publisher_common(rng, 1, bundle, pub_id, country)
        return Publisher(1, bundle, ctx, [], placements, country, platform, source, bcat)

    def _dooh(self, rng: random.Random, words: _Words, i: int) -> Publisher:
        country = self._country(rng)
        name = words.unique(lambda: words.word(2))
        pub_id = f"p{N_SITES + N_APPS + i:05d}"
        ctx = {"id": f"d{i:03d}", "name": f"{name.title()} Screens",
               "venuetype": rng.choice(_VENUES), "publisher": {"id": pub_id, "name": name}}
        source, _ = self._publisher_common(rng, 2, name, pub_id, country)
        return Publisher(2, name, ctx, [], self._placements(rng, 2, pub_id, country,
                                                            rng.randint(1, 3)),
                         country, 4, source, None)

    def device(self, platform: int, index: int, country: int) -> dict:
        key = (platform, index, country)
        dev = self._device_cache.get(key)
        if dev is None:
            dt, os_, osv, make, model, ua, w, h = self.devices[platform][index]
            dev = {"devicetype": dt, "os": os_, "ua": ua, "w": w, "h": h,
                   "language": self.lang[country], "geo": self.geo[country]}
            if osv:
                dev["osv"] = osv
            if make:
                dev["make"], dev["model"] = make, model
            if dt in (1, 4, 5):
                dev["connectiontype"] = 2 if platform == 0 else 6
            self._device_cache[key] = dev
        return dev


def _round_floor(value: float, cur: str) -> float:
    if cur in ("JPY", "INR"):
        return float(max(1, round(value)))
    return max(0.01, round(value, 2))


_GOLD = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def _unit(x: int, salt: int) -> float:
    """A stable pseudo-random number in [0, 1) for ``x`` (a user's home country, device)."""
    h = ((x + salt) * _GOLD) & _MASK
    h ^= h >> 29
    h = (h * 0xBF58476D1CE4E5B9) & _MASK
    h ^= h >> 32
    return (h >> 11) / 9007199254740992.0


class Users:
    """Which seeded user a request is for: Zipf activity over ``users`` profiles, ranks
    scattered over the ids by a bijection ``rank × a + b mod users`` (so heavy users are
    not simply the first ids)."""

    def __init__(self, users: int, salt: int = 0):
        self.n = users
        s, q = USER_ZIPF
        self.e = 1.0 - s
        self.q = q
        self.lo = q ** self.e
        self.span = (users + q) ** self.e - self.lo
        a = max(1, int(users * 0.6180339887))
        while users and math.gcd(a, users) != 1:
            a += 1
        self.a, self.b = a, (salt * 7919) % max(users, 1)

    def draw(self, u: float) -> int:
        rank = int((self.lo + u * self.span) ** (1.0 / self.e) - self.q)
        if rank >= self.n:
            rank = self.n - 1
        return (rank * self.a + self.b) % self.n


@lru_cache(maxsize=1)
def world() -> World:
    return World()


@lru_cache(maxsize=8)
def _users(users: int) -> Users:
    return Users(users)


def generate(rng: random.Random, request_id: str, users: Users, w: World) -> dict:
    """One request; every draw comes from ``rng`` (deterministic for its state)."""
    r = rng.random
    kind = bisect(w.kind_cum, r() * w.kind_total)
    cum, total = w.pub_cum[kind]
    pub = w.pubs[kind][bisect(cum, r() * total)]

    # the user: known (Zipf over the profiles), unknown id, or none
    x = r()
    uid = -1
    user = None
    if kind != 2:
        if x < KNOWN_USER and users.n:
            uid = users.draw(r())
            user = {"id": user_id(uid)}
        elif x < KNOWN_USER + UNKNOWN_USER or (x < KNOWN_USER and not users.n):
            if r() < 0.5:
                user = {"id": user_id(users.n + rng.randrange(max(10, users.n // 10)))}
            else:
                user = {"id": f"{rng.getrandbits(64):016x}"}
    # country and device: stable per known user, else the publisher's market
    platform = pub.platform
    if uid >= 0:
        country = bisect(w.country_cum, _unit(uid, 1) * w.country_total)
        dcum, dtot = w.device_cum[platform]
        dev_i = bisect(dcum, _unit(uid, 2 + platform) * dtot)
    else:
        country = pub.country if r() < 0.6 else bisect(w.country_cum, r() * w.country_total)
        dcum, dtot = w.device_cum[platform]
        dev_i = bisect(dcum, r() * dtot)
    if kind == 2:
        country = pub.country

    placements = pub.placements
    n = bisect(N_IMPS_CUM, r() * N_IMPS_CUM[-1]) + 1
    if n == 1 or len(placements) == 1:
        chosen = [placements[int(r() * len(placements))]]
    else:
        chosen = rng.sample(placements, min(n, len(placements)))
    imps = []
    for k, p in enumerate(chosen):
        imp = p.base.copy()
        imp["id"] = _IMP_IDS[k]
        if p.floor is not None:
            imp["bidfloor"] = _round_floor(p.floor * (0.85 + 0.3 * r()), p.cur)
        imps.append(imp)

    req: dict = {
        "id": request_id,
        "at": 2 if r() * AT_CUM[-1] < AT_CUM[0] else 1,
        "tmax": TMAX[bisect(TMAX_CUM, r() * TMAX_CUM[-1])],
        "imp": imps,
    }
    cur = CURS[bisect(CURS_CUM, r() * CURS_CUM[-1])]
    if cur is not None:
        req["cur"] = cur
    if kind == 0:
        site = pub.ctx.copy()
        site["page"] = f"https://{pub.name}/{pub.sections[int(r() * len(pub.sections))]}/" \
                       f"{rng.getrandbits(24)}"
        if w.devices[0][dev_i][0] != 2:
            site["mobile"] = 1
        req["site"] = site
    elif kind == 1:
        req["app"] = pub.ctx
    else:
        req["dooh"] = pub.ctx
    req["device"] = w.device(platform, dev_i, country)
    if user is not None:
        req["user"] = user
    req["regs"] = w.regs[country]
    if pub.source is not None:
        req["source"] = pub.source
    if pub.bcat is not None:
        req["bcat"] = pub.bcat
    return req


def make_request(rng: random.Random, request_id: str, users: int) -> dict:
    """One synthetic request for ``users`` seeded profiles, drawn from ``rng``."""
    return generate(rng, request_id, _users(users), world())


def make_body(rng: random.Random, request_id: str, users: int) -> bytes:
    return orjson.dumps(make_request(rng, request_id, users))
