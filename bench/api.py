"""Analytics API benchmark (issue #7): ``python -m bench.api [--sizes 1000000,10000000]
[--requests N]``.

For each size, in a scratch directory under the system temp dir (deleted afterwards, also
on Ctrl-C / SIGTERM):

1. a warehouse DuckDB file with ``outcomes`` and ``bid_requests`` (DDL from
   ``helios_pipeline.warehouse.tables``) **bulk-loaded with SQL, not through the pipeline**:
   7 UTC days in arrival order, ~1,000 Zipf-skewed sites (10 % apps), 25 IAB segments
   (15 % not enriched, no segment), 4 media, won/lost/nobid ≈ 20/55/25 %, 10 % of the
   requests with a second imp, 200,000 user ids. The tables are created without the
   warehouse's primary keys (bulk load), so the naive request lookup below is a scan of a
   table without index, as in the system Helios replaces;
2. ``helios_pipeline.serving.snapshot.publish`` of that warehouse (timed);
3. the API as a real process (``python -m helios_pipeline.cli serve api`` on a free
   127.0.0.1 port, stopped by PID), warmed up, then p50/p99 of GET ``/api/outcomes/stats/``,
   ``/api/outcomes/daily_stats/``, ``/api/outcomes/?segment=IAB3`` (first page) and
   ``/api/requests/{rid}/`` (random existing rids) at concurrency 1 and 8, closed loop, by
   wrk (bench/wrk.py: a C client, so the figure is the API's, not the load generator's on
   the same 2 cores) or, with ``--client python`` or without wrk installed, httpx threads;
4. the **naive baseline, in the same run**: the same answer computed the old system's way, a
   DuckDB connection (2 threads like the API, 128 MB: more buffer than the API) on the
   warehouse file running the straightforward SQL over the raw ``outcomes`` table, same concurrency;
5. dashboard first load in headless Chromium (playwright; a fresh browser context per
   load, so nothing cached): from ``page.goto('/')`` until the cards show numbers and until
   the page's first ``loadAll()`` has finished (stats, daily_stats ×3, outcomes page), next
   to the same HTML + assets + API calls fetched sequentially by a fresh httpx client and the
   naive SQL of those API calls;
6. snapshot swaps under load: ``SWAPS`` patched publishes of the warehouse, each waited for
   until the API answers from it (``serving_snapshot_published_timestamp_seconds``), while
   ``/api/requests/{rid}/`` runs at concurrency 8 — the API's steady state when the platform
   publishes every minute (it holds the previous snapshot one generation longer);
7. API RSS (psutil), sampled every 20 ms during all of the above: the maximum, next to the
   RSS right after startup and the maximum before the swaps.

Prints one rich table per size and writes bench/results/api.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import httpx
import psutil
from rich.console import Console
from rich.table import Table

from bench import RESULTS, cpu_ticks, steal_pct, write_results, wrk
from bench.run import scrape
from helios_pipeline.api import queries as q
from helios_pipeline.serving import stories
from helios_pipeline.serving.snapshot import publish
from helios_pipeline.stack import probes
from helios_pipeline.stack.servers import launch_chromium
from helios_pipeline.warehouse import tables

console = Console(width=160)
DAYS = 7
START = "2026-11-01 00:00:00+00"
SITES = 1000
USERS = 200_000
STEP = 1_000_000
API_MEMORY_MB = 128

# Targets (ms, MiB) from issue #7; size-dependent ones are (≤ 1M, ≤ 10M).
TARGETS = {"stats": (20, 50), "daily_stats": (20, 50), "outcomes": (20, 20),
           "request": (10, 10), "stats_mix": (20, 50), "outcomes_mix": (20, 20)}
DASHBOARD_TARGET_MS = 1000
RIDS = 2000  # sampled request ids; call i asks rids[i % RIDS]
C8_FROM, WARM_FROM, SWAP_FROM = 1000, 1900, 10**8  # first call numbers: c=8, warm-up, swaps
RSS_TARGET_MIB = 150

OUTCOMES_SQL = f"""
INSERT INTO outcomes BY NAME
WITH u AS (
    SELECT i, random() AS u_out, random() AS u_dom, random() AS u_seg, random() AS u_med,
           random() AS u_n1, random() AS u_n2, random() AS u_fl, random() AS u_cl,
           random() AS u_x,
           CASE WHEN i % 10 = 1 THEN i - 1 ELSE i END AS req
    FROM range(?, ?) t(i)
), d AS (
    SELECT *,
        CASE WHEN u_out < 0.20 THEN 'won' WHEN u_out < 0.75 THEN 'lost' ELSE 'nobid' END
            AS outcome,
        CAST(floor({SITES} * pow(u_dom, 2.5)) AS INTEGER) AS dom,
        CASE WHEN u_seg >= 0.15
             THEN 'IAB' || CAST(1 + floor(25 * pow((u_seg - 0.15) / 0.85, 1.6)) AS INTEGER)
        END AS seg,
        CASE WHEN u_med < 0.65 THEN 'banner' WHEN u_med < 0.80 THEN 'video'
             WHEN u_med < 0.95 THEN 'native' ELSE 'audio' END AS med,
        TIMESTAMPTZ '{START}' + to_microseconds(CAST({DAYS} * 86400e6 * req / ? AS BIGINT))
            AS ts,
        round(exp(ln(0.6) + 0.6 * sqrt(-2 * ln(1 - u_n1)) * cos(2 * pi() * u_n2)), 4) AS bid,
        round(u_fl, 2) AS fl
    FROM u
)
SELECT lpad(to_hex(epoch_ms(ts)), 12, '0') || '0a1b2c3d' || lpad(to_hex(req), 12, '0') AS rid,
       CASE WHEN i % 10 = 1 THEN '2' ELSE '1' END AS imp_id,
       'req-' || req AS request_id,
       CAST(ts AT TIME ZONE 'UTC' AS DATE) AS day, ts AS received_at,
       ts + INTERVAL 5 MILLISECOND AS bid_at, ts + INTERVAL 12 MILLISECOND AS decided_at,
       CASE WHEN dom % 10 <> 9 THEN printf('site%04d.example.com', dom) END AS site_domain,
       CASE WHEN dom % 10 = 9 THEN printf('com.example.app%04d', dom) END AS app_bundle,
       CASE WHEN dom % 10 <> 9 THEN printf('site%04d.example.com', dom)
            ELSE printf('com.example.app%04d', dom) END AS domain,
       'pub-' || (dom % 50) AS publisher_id, CASE WHEN u_x < 0.6 THEN 2 ELSE 4 END AS device_type,
       CASE WHEN u_x < 0.4 THEN 'USA' WHEN u_x < 0.55 THEN 'GBR' WHEN u_x < 0.7 THEN 'DEU'
            ELSE 'FRA' END AS country,
       med AS media,
       CASE WHEN outcome = 'won' THEN least(fl, bid) ELSE fl END AS floor_usd,
       CASE WHEN outcome = 'won' THEN least(fl, bid) ELSE fl END AS bidfloor,
       'USD' AS bidfloorcur, CASE WHEN u_x < 0.8 THEN 2 ELSE 1 END AS auction_type,
       CASE WHEN outcome <> 'nobid' THEN bid END AS bid_price_usd,
       seg IS NOT NULL AS enriched, seg AS segment,
       CASE WHEN seg IS NOT NULL THEN 'found' ELSE 'not_found' END AS profile,
       CASE WHEN outcome <> 'nobid' THEN 'cr-' || med || '-' || lower(coalesce(seg, 'x'))
       END AS crid,
       outcome,
       CASE WHEN outcome = 'won'
            THEN round(greatest(least(fl, bid), bid * (0.55 + 0.45 * u_cl)), 4)
       END AS clearing_price_usd,
       CASE WHEN outcome = 'won' THEN 0 WHEN outcome = 'lost' AND bid < fl THEN 100
            WHEN outcome = 'lost' THEN 102 END AS loss_reason,
       CASE WHEN outcome = 'nobid' THEN
            CASE WHEN u_cl < 0.7 THEN 'below_floor' ELSE 'unsupported_currency' END
       END AS nobid_reason,
       CASE WHEN outcome = 'won' THEN round(bid * (0.55 + 0.45 * u_cl) - 0.01, 4)
            WHEN outcome = 'lost' THEN round(bid * (1 + u_cl), 4) END AS competitor_price_usd
FROM d"""

# one ingest's worth of new outcome rows: 30 s at 600 outcomes/s (500 requests/s)
PATCH_ROWS = 18_000
SWAPS = 3  # publishes the API switches to under load (step 6)
# the API's data ≤ 60 s behind `outcomes` (issue #7): the publish is one part of that
FRESH_TARGET_S = 60

REQUESTS_SQL = f"""
INSERT INTO bid_requests BY NAME
SELECT rid, imp_id, request_id, received_at, media, bidfloor, bidfloorcur, auction_type,
       site_domain, app_bundle, publisher_id, device_type, country,
       'u' || lpad(CAST(hash(rid) % {USERS} AS VARCHAR), 8, '0') AS user_id
FROM outcomes"""

# The naive baseline: what the system Helios replaces did, straight over the raw table.
NAIVE_COLS = ", ".join(c.strip() for c in q.OUTCOME_COLUMNS.split(",") if c.strip() != "user_id")
NAIVE = {
    "stats": (f"SELECT {q._SUMS_ROWS} FROM outcomes", lambda _: []),
    "daily_stats": (f"SELECT day, {q._SUMS_ROWS} FROM outcomes GROUP BY day ORDER BY day",
                    lambda _: []),
    "outcomes": (None, None),  # two statements, see naive_outcomes_page
    "request": (f"SELECT {NAIVE_COLS} FROM outcomes WHERE rid = ? ORDER BY imp_id",
                lambda rid: [rid]),
}
NAIVE_PAGE = (f"SELECT {NAIVE_COLS} FROM outcomes WHERE segment = ? "
              "ORDER BY received_at DESC NULLS LAST, rid, imp_id LIMIT ?")
NAIVE_COUNT = "SELECT count(*) FROM outcomes WHERE segment = ?"
# Cache-miss-realistic mixes: call i asks a seeded-random filter (25 segments × 4 media ×
# 7 start days; 1,000 sites × 3 outcomes), so with --requests 300 nearly every call is a
# miss of the answer cache (which is on, as in production).
MIX_SEGMENTS = [f"IAB{k}" for k in range(1, 26)]
MIX_MEDIA = ["banner", "video", "native", "audio"]


def mix_filters(name: str, i: int) -> q.Filters:
    import random

    r = random.Random(i * 7919 + len(name))
    if name == "stats_mix":
        day = f"2026-11-0{1 + r.randrange(DAYS)}"
        return q.Filters(segment=r.choice(MIX_SEGMENTS), media_type=r.choice(MIX_MEDIA),
                         date_from=date.fromisoformat(day))
    return q.Filters(site_domain=f"site{int(SITES * r.random() ** 2.5):04d}.example.com",
                     outcome=r.choice(["won", "lost", "nobid"]))


def mix_path(name: str, i: int) -> str:
    f = mix_filters(name, i)
    base = "/api/outcomes/stats/" if name == "stats_mix" else "/api/outcomes/"
    return f"{base}?{urlencode(f.as_query())}"


NAIVE_DAILY_GROUP = (f"SELECT day, {{col}} AS grp, {q._SUMS_ROWS} FROM outcomes "
                     "GROUP BY ALL ORDER BY day, grp NULLS LAST")


class HttpError(RuntimeError):
    pass


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


def summary(lat_s: list[float], wall_s: float) -> dict:
    ms = [x * 1000 for x in lat_s]
    return {"n": len(ms), "p50_ms": round(pct(ms, 50), 3), "p99_ms": round(pct(ms, 99), 3),
            "max_ms": round(max(ms), 3), "per_s": round(len(ms) / wall_s, 1)}


def closed_loop(make_worker: Callable[[], Callable[[int], None]], concurrency: int,
                n: int, cap_s: float, start: int = 0,
                stop: threading.Event | None = None) -> dict:
    """``concurrency`` threads each running its worker back to back until ``n`` calls in all
    (or ``cap_s`` seconds, or ``stop`` is set); latency per call. Calls are numbered from
    ``start``: runs that must not hit each other's cached answers (random rids, random
    filters) use disjoint numbers."""
    lat: list[float] = []
    lock = threading.Lock()
    counter = iter(range(start, start + n))
    deadline = time.perf_counter() + cap_s
    errors: list[BaseException] = []
    http_errors: list[str] = []

    def run() -> None:
        work = make_worker()
        while time.perf_counter() < deadline and not (stop and stop.is_set()):
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t0 = time.perf_counter()
            try:
                work(i)
            except HttpError as e:
                with lock:
                    http_errors.append(str(e))
                continue
            except BaseException as e:
                errors.append(e)
                return
            dt = time.perf_counter() - t0
            with lock:
                lat.append(dt)

    threads = [threading.Thread(target=run, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    if not lat:
        raise RuntimeError(f"every call failed: {http_errors[:1]}")
    out = summary(lat, wall)
    if http_errors:
        out["errors"] = len(http_errors)
        out["first_error"] = http_errors[0]
    return out


# --------------------------------------------------------------------------------- data
def build_warehouse(db: Path, n: int) -> dict:
    con = duckdb.connect(str(db))
    try:
        con.execute(tables.ddl(tables.OutcomeRow, key=False)).fetchall()
        con.execute(tables.ddl(tables.BidRequestRow, key=False)).fetchall()
        t0 = time.perf_counter()
        for start in range(0, n, STEP):
            con.execute(OUTCOMES_SQL, [start, min(n, start + STEP), n]).fetchall()
        con.execute(REQUESTS_SQL).fetchall()
        con.execute("CHECKPOINT").fetchall()
        load_s = time.perf_counter() - t0
        shape = con.execute("""
            SELECT count(*), count(DISTINCT rid), count(DISTINCT domain),
                   count(DISTINCT segment), count(DISTINCT media), count(DISTINCT day),
                   round(avg((outcome = 'won')::INT), 3), round(avg((outcome = 'lost')::INT), 3),
                   round(avg((outcome = 'nobid')::INT), 3),
                   count(*) FILTER (WHERE segment = 'IAB3')
            FROM outcomes""").fetchall()[0]
        users = con.execute("SELECT count(DISTINCT user_id) FROM bid_requests").fetchall()[0][0]
        t0 = time.perf_counter()
        pub = publish(con, db.parent / "serving.duckdb")
        publish_s = time.perf_counter() - t0
        # what the next publish costs after one ingest: the newest PATCH_ROWS rows logged
        # as changed, as ingest_topic logs a batch's rid range (rewritten in place, so the
        # data the API is measured on stays the shape above): a patch of the file just
        # written, which re-copies them and their days' statistics, and writes a stories tail
        con.execute(tables.ddl(tables.ServingChange)).fetchall()
        con.execute("INSERT INTO serving_changes (lo_rid, hi_rid) SELECT min(rid), max(rid) "
                    "FROM (SELECT rid FROM outcomes ORDER BY rid DESC LIMIT ?)",
                    [PATCH_ROWS]).fetchall()
        patched = publish(con, db.parent / "serving.duckdb")
    finally:
        con.close()
    keys = ("rows", "requests", "sites", "segments", "media", "days", "won", "lost", "nobid",
            "iab3_rows")
    return {"load_s": round(load_s, 2), "publish_s": round(publish_s, 2),
            "patch_s": round(patched.seconds, 2), "patch_mode": patched.mode,
            "patch_rows": patched.tail_rows,
            "warehouse_mb": round(db.stat().st_size / 2**20),
            "snapshot_mb": round(pub.path.stat().st_size / 2**20),
            "stories_mb": round(sum((pub.path.parent / f).stat().st_size
                                    for f in patched.stories) / 2**20),
            "shape": {**dict(zip(keys, shape, strict=True)), "users": users},
            "snapshot": str(pub.path)}


def snapshot_cube_rows(path: Path) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("SELECT count(*) FROM cube").fetchall()[0][0]
    finally:
        con.close()


# --------------------------------------------------------------------------------- API
class Api:
    def __init__(self, snapshot: Path, home: Path) -> None:
        self.port = probes.free_port()
        env = {**os.environ, "HELIOS_HOME": str(home), "HELIOS_SERVING_PATH": str(snapshot),
               "HELIOS_API_PORT": str(self.port), "HELIOS_LOG_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "helios_pipeline.cli", "serve", "api"], env=env,
            stdout=subprocess.DEVNULL, stderr=(home / "api.log").open("wb"))
        self.log = home / "api.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"API exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit("API did not become ready in 60 s")
            time.sleep(0.2)
        self.rss_start = self.rss()
        self.rss_max = self.rss_start
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def cpu_s(self) -> float:
        """CPU seconds the API process has used (user + system, all threads)."""
        try:
            t = self.ps.cpu_times()
        except psutil.Error:
            return 0.0
        return t.user + t.system

    def rss(self) -> int:
        try:
            return self.ps.memory_info().rss
        except psutil.Error:
            return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.rss_max = max(self.rss_max, self.rss())

    def stop(self) -> None:
        if hasattr(self, "_stop"):
            self._stop.set()
        if self.proc.poll() is None:
            self.proc.terminate()  # by PID
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def api_worker(url: str, path_for: Callable[[int], str], check: Callable[[dict], None]
               ) -> Callable[[], Callable[[int], None]]:
    def make() -> Callable[[int], None]:
        client = httpx.Client(base_url=url, timeout=60)

        def work(i: int) -> None:
            try:
                r = client.get(path_for(i))
            except httpx.TransportError as e:  # e.g. the API process died
                raise HttpError(f"{path_for(i)} → {type(e).__name__}: {e}") from e
            if r.status_code != 200:  # counted, not timed (summary: "errors")
                raise HttpError(f"{r.request.url} → {r.status_code} {r.text[:200]}")
            check(r.json())
        return work
    return make


def naive_worker(con: duckdb.DuckDBPyConnection, name: str, rids: list[str]
                 ) -> Callable[[], Callable[[int], None]]:
    def make() -> Callable[[int], None]:
        cur = con.cursor()
        if name == "outcomes":
            def work(i: int) -> None:
                cur.execute(NAIVE_COUNT, ["IAB3"]).fetchall()
                [q.outcome_json((*r[:5], None, *r[5:])) for r in
                 cur.execute(NAIVE_PAGE, ["IAB3", 100]).fetchall()]
            return work
        if name.endswith("_mix"):
            def work(i: int) -> None:
                where, params = mix_filters(name, i).where()
                if name == "stats_mix":
                    cur.execute(f"SELECT {q._SUMS_ROWS} FROM outcomes{where}", params
                                ).fetchall()
                    return
                cur.execute(f"SELECT count(*) FROM outcomes{where}", params).fetchall()
                [q.outcome_json((*r[:5], None, *r[5:])) for r in cur.execute(
                    f"SELECT {NAIVE_COLS} FROM outcomes{where} ORDER BY received_at DESC "
                    "NULLS LAST, rid, imp_id LIMIT 100", params).fetchall()]
            return work
        sql, params = NAIVE[name]

        def work(i: int) -> None:
            rows = cur.execute(sql, params(rids[i % len(rids)])).fetchall()
            if not rows:
                raise RuntimeError(f"naive {name}: no rows")
        return work
    return make


def pick_rids(snapshot: Path, k: int = RIDS) -> list[str]:
    """Existing request ids, sampled (seeded) from the snapshot. The bulk rows carry ids
    built like the gateway's (``messages.rid_at``: time, process prefix, counter)."""
    con = duckdb.connect(str(snapshot), read_only=True)
    try:
        return [r[0] for r in con.execute(
            f"SELECT rid FROM outcomes USING SAMPLE reservoir({k} ROWS) REPEATABLE (7)"
        ).fetchall()]
    finally:
        con.close()


# --------------------------------------------------------------------------- dashboard
FIRST_LOAD_API = ["/api/outcomes/stats/", "/api/outcomes/daily_stats/",
                  "/api/outcomes/daily_stats/?group_by=site",
                  "/api/outcomes/daily_stats/?group_by=segment",
                  "/api/outcomes/?page=1&page_size=50&ordering=-timestamp"]
ASSETS = ["/", "/static/app.css", "/static/vendor/chart.umd.min.js", "/static/app.js"]


def dashboard_browser(url: str, reps: int) -> dict:
    from playwright.sync_api import sync_playwright

    cards, done, api_calls = [], [], []
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            for rep in range(reps + 1):  # the first load warms Chromium itself; not counted
                ctx = browser.new_context()
                page = ctx.new_page()
                seen: list[str] = []
                page.on("request", lambda r, seen=seen: seen.append(r.url))
                t0 = time.perf_counter()
                page.goto(f"{url}/", wait_until="commit")
                page.wait_for_function(
                    "() => /\\d/.test(document.querySelector('#v-total')?.textContent || '')",
                    polling="raf", timeout=60_000)
                t1 = time.perf_counter()
                page.wait_for_function("() => document.body.dataset.loaded !== undefined",
                                       polling="raf", timeout=60_000)
                t2 = time.perf_counter()
                if rep:
                    cards.append(t1 - t0)
                    done.append(t2 - t0)
                api_calls = [u.removeprefix(url) for u in seen if "/api/" in u]
                ctx.close()
        finally:
            browser.close()
    return {"cards": summary(cards, sum(cards)), "loaded": summary(done, sum(done)),
            "api_calls": api_calls}


def dashboard_sequential(url: str, reps: int) -> dict:
    lat = []
    for _ in range(reps):
        with httpx.Client(base_url=url, timeout=60) as c:
            t0 = time.perf_counter()
            for p in ASSETS + FIRST_LOAD_API:
                r = c.get(p)
                r.raise_for_status()
                r.read()
            lat.append(time.perf_counter() - t0)
    return summary(lat, sum(lat))


def dashboard_naive(con: duckdb.DuckDBPyConnection, reps: int) -> dict:
    """The first load's five API answers computed naively over the raw table."""
    lat = []
    cur = con.cursor()
    for _ in range(reps):
        t0 = time.perf_counter()
        cur.execute(NAIVE["stats"][0]).fetchall()
        cur.execute(NAIVE["daily_stats"][0]).fetchall()
        cur.execute(NAIVE_DAILY_GROUP.format(col="site_domain")).fetchall()
        cur.execute(NAIVE_DAILY_GROUP.format(col="segment")).fetchall()
        cur.execute("SELECT count(*) FROM outcomes").fetchall()
        cur.execute(f"SELECT {NAIVE_COLS} FROM outcomes ORDER BY received_at DESC NULLS LAST, "
                    "rid, imp_id LIMIT 50").fetchall()
        lat.append(time.perf_counter() - t0)
    return summary(lat, sum(lat))


def published_at(url: str) -> float:
    """The API's ``serving_snapshot_published_timestamp_seconds`` (0 when not exported)."""
    return scrape([f"{url}/metrics"], "serving_snapshot_published_timestamp_seconds")


def swaps_under_load(api: Api, db: Path, path_for: Callable[[int], str],
                     check: Callable[[dict], None]) -> dict:
    """``SWAPS`` patched publishes while stories are asked at c=8; each waited for until the
    API reports the new snapshot's publish time. RSS is the sampler's (Api._sample)."""
    rss_before = api.rss_max
    con = duckdb.connect(str(db))
    waits: list[float] = []
    result: dict = {}
    done = threading.Event()
    runner = threading.Thread(target=lambda: result.update(closed_loop(
        api_worker(api.url, path_for, check), 8, 10**9, 600, start=SWAP_FROM, stop=done)))
    try:
        runner.start()
        for _ in range(SWAPS):
            time.sleep(2)
            before = published_at(api.url)
            con.execute("INSERT INTO serving_changes (lo_rid, hi_rid) SELECT min(rid), max(rid)"
                        " FROM (SELECT rid FROM outcomes ORDER BY rid DESC LIMIT ?)",
                        [PATCH_ROWS]).fetchall()
            publish(con, db.parent / "serving.duckdb")
            t0 = time.monotonic()
            while published_at(api.url) == before:
                if time.monotonic() - t0 > 30:
                    raise SystemExit("the API did not switch to a new snapshot within 30 s")
                time.sleep(0.05)
            waits.append(time.monotonic() - t0)
        time.sleep(2)
    finally:
        done.set()
        con.close()
        runner.join()
    return {"swaps": len(waits), "switch_s_max": round(max(waits), 2), "story": result,
            "rss_max_before_mib": round(rss_before / 2**20, 1),
            "rss_after_mib": round(api.rss() / 2**20, 1)}


# ---------------------------------------------------------------------------- one size
def run_size(n: int, requests: int, cap_s: float, naive_cap_s: float, dash_reps: int,
             work_root: Path, res: dict, client: str = "wrk") -> dict:
    work = Path(tempfile.mkdtemp(prefix=f"helios-bench-api-{n}-", dir=work_root))
    res.update(rows=n, started=datetime.now(UTC).isoformat(timespec="seconds"))
    api: Api | None = None
    try:
        console.print(f"[bold]{n:,} rows[/]: bulk-loading the warehouse with SQL "
                      f"(not through the pipeline) in {work}")
        res["data"] = build_warehouse(work / "warehouse.duckdb", n)
        snap = Path(res["data"].pop("snapshot"))
        res["data"]["cube_rows"] = snapshot_cube_rows(snap)
        console.print(f"  loaded in {res['data']['load_s']} s, published in "
                      f"{res['data']['publish_s']} s; {res['data']}")
        rids = pick_rids(snap)
        # the snapshot's pages in the OS cache, as a serving file in use is (and as the naive
        # side's warm-up below does for the warehouse): this machine's page reclaim (DAMON)
        # evicts a file written minutes ago, and random stories then measure the disk
        for f in (snap, *snap.parent.glob(stories.pattern(snap))):
            with f.open("rb") as fh:
                while fh.read(8 << 20):
                    pass
        api = Api(snap, work)
        total = n

        def check_stats(b: dict) -> None:
            assert b["total_outcomes"] == total, b

        def check_daily(b: list) -> None:
            assert len(b) == DAYS, len(b)

        def check_page(b: dict) -> None:
            assert len(b["results"]) == 100, b["count"]

        def check_story(b: dict) -> None:
            assert b["imps"], b

        def check_any_page(b: dict) -> None:
            assert "results" in b and b["count"] >= len(b["results"]), b

        def check_any_stats(b: dict) -> None:
            assert b["total_outcomes"] <= total, b

        endpoints = {
            "stats": (lambda i: "/api/outcomes/stats/", check_stats),
            "daily_stats": (lambda i: "/api/outcomes/daily_stats/", check_daily),
            "outcomes": (lambda i: "/api/outcomes/?segment=IAB3", check_page),
            "request": (lambda i: f"/api/requests/{rids[i % len(rids)]}/", check_story),
            "stats_mix": (lambda i: mix_path("stats_mix", i), check_any_stats),
            "outcomes_mix": (lambda i: mix_path("outcomes_mix", i), check_any_page),
        }
        console.print(f"  API pid {api.proc.pid} on {api.url}, RSS at start "
                      f"{api.rss_start / 2**20:.0f} MiB; warming up")
        warm = {name: api_worker(api.url, p, c)() for name, (p, c) in endpoints.items()}
        for name, w in warm.items():
            for i in range(10 if name != "request" else 50):
                w(WARM_FROM + i)
        for p in FIRST_LOAD_API + ASSETS:
            httpx.get(f"{api.url}{p}", timeout=60).raise_for_status()

        naive_con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True,
                                   config={"threads": 2, "memory_limit": f"{API_MEMORY_MB}MB"})
        try:
            # naive warm-up: the file's pages in the OS cache, like the snapshot's
            for name in endpoints:
                w = naive_worker(naive_con, name, rids)()
                for i in range(2):
                    w(i)
            figs: dict = res.setdefault("figures", {})
            for name, (path_for, check) in endpoints.items():
                for conc in (1, 8):
                    cpu0, ticks0 = api.cpu_s(), cpu_ticks()
                    # c=1 asks calls 0.., c=8 calls 1000..: a random rid or filter of one
                    # run is never answered from the cache the other filled
                    first = 0 if conc == 1 else C8_FROM
                    if client == "wrk":  # the answers' shapes were checked in the warm-up
                        a = wrk.closed_loop(api.url, [path_for(i) for i in range(
                            first, first + requests)], conc, cap_s)
                    else:
                        a = closed_loop(api_worker(api.url, path_for, check), conc, requests,
                                        cap_s, start=first)
                    # the API process's CPU per answered call: its service time, which the
                    # machine's load does not inflate the way it inflates wall-clock p50
                    a["cpu_ms_per_call"] = round(
                        1000 * (api.cpu_s() - cpu0) / (a["n"] + a.get("errors", 0)), 3)
                    a["steal_pct"] = steal_pct(ticks0, cpu_ticks())
                    b = closed_loop(naive_worker(naive_con, name, rids), conc,
                                    requests, naive_cap_s, start=first)
                    figs[f"{name}@{conc}"] = {"api": a, "naive": b,
                                              "load1": round(os.getloadavg()[0], 2)}
                    console.print(f"  {name:12} c={conc}: API p50 {a['p50_ms']:.1f} ms "
                                  f"p99 {a['p99_ms']:.1f} ms, CPU {a['cpu_ms_per_call']} ms/call"
                                  f" ({a['n']} ok, "
                                  f"{a.get('errors', 0)} errors) | naive p50 "
                                  f"{b['p50_ms']:.1f} ms ({b['n']}); load "
                                  f"{os.getloadavg()[0]:.1f}, CPU steal {a['steal_pct']} %")
            console.print("  dashboard first load (headless Chromium)")
            res["dashboard"] = {
                "browser": dashboard_browser(api.url, dash_reps),
                "sequential_httpx": dashboard_sequential(api.url, dash_reps),
                "naive_sql": dashboard_naive(naive_con, min(dash_reps, 3)),
            }
        finally:
            naive_con.close()
        console.print(f"  {SWAPS} snapshot swaps under story load (c=8)")
        res["swaps"] = swaps_under_load(api, work / "warehouse.duckdb", *endpoints["request"])
        errors = [ln for ln in api.log.read_text(errors="replace").splitlines()
                  if "Error" in ln or "error" in ln]
        res["api_log_errors"] = {"count": len(errors), "distinct": sorted(set(errors))[:10]}
        res["rss"] = {"start_mib": round(api.rss_start / 2**20, 1),
                      "max_mib": round(api.rss_max / 2**20, 1)}
    finally:
        if api is not None:
            res["api_exit_code"] = api.proc.poll()  # None: still running, stopped by us
            api.stop()
            with contextlib.suppress(OSError):  # the API's own account of failures
                res["api_log_tail"] = api.log.read_text(errors="replace").splitlines()[-40:]
        shutil.rmtree(work, ignore_errors=True)
    return res


def report(res: dict) -> Table:
    n = res["rows"]
    big = n > 1_000_000
    d = res["data"]
    client = {"wrk": "wrk", "python": "httpx threads"}[res.get("client", "python")]
    t = Table(title=f"Analytics API, {n:,} outcome rows (bulk-loaded with SQL, not through "
                    f"the pipeline); publish {d['publish_s']} s; naive = same answer by SQL "
                    f"over the raw warehouse table, same run; API figures by {client}")
    for col in ("figure", "p50", "p99", "API CPU/call", "steal", "naive p50", "naive / API",
                "target", ""):
        t.add_column(col, justify="right" if col not in ("figure", "") else "left")
    labels = {"stats": "stats/", "daily_stats": "daily_stats/",
              "outcomes": "outcomes/?segment=IAB3 p1", "request": "requests/{rid}/",
              "stats_mix": "stats/ random segment+media+day",
              "outcomes_mix": "outcomes/ random site+outcome p1"}
    for key, f in res["figures"].items():
        name, conc = key.split("@")
        target = TARGETS[name][1 if big else 0]
        a, b = f["api"], f["naive"]
        met = a["p50_ms"] <= target and not a.get("errors")
        errs = f" [red]({a['errors']} HTTP errors)[/]" if a.get("errors") else ""
        t.add_row(f"{labels[name]} c={conc}{errs}", f"{a['p50_ms']:.1f} ms",
                  f"{a['p99_ms']:.1f} ms", f"{a.get('cpu_ms_per_call', 0):.2f} ms",
                  "" if a.get("steal_pct") is None else f"{a['steal_pct']:.0f} %",
                  f"{b['p50_ms']:.1f} ms", f"{b['p50_ms'] / a['p50_ms']:.1f}×",
                  f"p50 ≤ {target} ms", "met" if met else "[red]missed[/]")

    def row(label: str, p50: str, p99: str = "", naive: str = "", ratio: str = "",
            target: str = "", verdict: str = "") -> None:  # the rows without CPU or steal
        t.add_row(label, p50, p99, "", "", naive, ratio, target, verdict)

    dash = res["dashboard"]
    br = dash["browser"]
    row("dashboard: cards show numbers (Chromium)", f"{br['cards']['p50_ms']:.0f} ms",
        f"max {br['cards']['max_ms']:.0f} ms")
    met = br["loaded"]["p50_ms"] <= DASHBOARD_TARGET_MS
    row(f"dashboard: first load complete ({len(br['api_calls'])} API calls)",
        f"{br['loaded']['p50_ms']:.0f} ms", f"max {br['loaded']['max_ms']:.0f} ms",
        f"{dash['naive_sql']['p50_ms']:.0f} ms (SQL only)",
        f"{dash['naive_sql']['p50_ms'] / br['loaded']['p50_ms']:.1f}×",
        f"≤ {DASHBOARD_TARGET_MS} ms", "met" if met else "[red]missed[/]")
    row("dashboard: same 9 fetches, sequential httpx",
        f"{dash['sequential_httpx']['p50_ms']:.0f} ms",
        f"max {dash['sequential_httpx']['max_ms']:.0f} ms")
    rss = res["rss"]
    row("API RSS, max during the run", f"{rss['max_mib']:.0f} MiB",
        f"at start {rss['start_mib']:.0f} MiB", target=f"≤ {RSS_TARGET_MIB} MiB",
        verdict="met" if rss["max_mib"] <= RSS_TARGET_MIB else "[red]missed[/]")
    if "swaps" in res:  # absent in results written before the swap stage existed
        sw = res["swaps"]
        row(f"requests/{{rid}}/ c=8 during {sw['swaps']} snapshot swaps",
            f"{sw['story']['p50_ms']:.1f} ms", f"{sw['story']['p99_ms']:.1f} ms",
            target=f"switch ≤ {sw['switch_s_max']} s")
        row("API RSS, max before the swaps", f"{sw['rss_max_before_mib']:.0f} MiB",
            f"after {sw['rss_after_mib']:.0f} MiB")
    row("publish snapshot, whole", f"{d['publish_s']} s", naive=f"bulk load {d['load_s']} s")
    row(f"publish after one ingest ({d['patch_mode']}, {d['patch_rows']:,} rows)",
        f"{d['patch_s']} s", naive=f"whole {d['publish_s']} s",
        ratio=f"{d['publish_s'] / max(d['patch_s'], 1e-3):.0f}×",
        target=f"≤ {FRESH_TARGET_S} s",
        verdict="met" if d["patch_s"] <= FRESH_TARGET_S else "[red]missed[/]")
    return t


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000000,10000000",
                    help="outcome rows per run, comma-separated")
    ap.add_argument("--requests", type=int, default=300,
                    help="requests per API figure (and at most per naive figure)")
    ap.add_argument("--seconds", type=float, default=30.0,
                    help="cap per API figure (s)")
    ap.add_argument("--naive-seconds", type=float, default=15.0,
                    help="cap per naive figure (s)")
    ap.add_argument("--dashboard-loads", type=int, default=7)
    ap.add_argument("--client", choices=("wrk", "python"),
                    default="wrk" if wrk.available() else "python",
                    help="load generator for the API figures: wrk (default where installed) "
                         "or httpx threads, which share the cores and a GIL with each other")
    ap.add_argument("--cache-off", action="store_true",
                    help="run the API with HELIOS_API_CACHE_ENTRIES=0 (every call queries)")
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()),
                    help="scratch parent directory (10M rows need ~5 GB)")
    args = ap.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s]
    if not 0 < args.requests <= WARM_FROM - C8_FROM:
        ap.error(f"--requests must be 1..{WARM_FROM - C8_FROM}: c=1, c=8 and the warm-up ask "
                 "disjoint rids and filters")
    if args.client == "wrk" and not wrk.available():
        ap.error(f"--client wrk: wrk is not installed ({wrk.INSTALL_HINT}), or use "
                 "--client python")
    if args.client == "python":
        console.print("API figures by httpx threads (no wrk: "
                      f"{wrk.INSTALL_HINT}): at c=8 they include the client's own GIL")
    if args.cache_off:
        os.environ["HELIOS_API_CACHE_ENTRIES"] = "0"

    def _term(signum, frame):  # finally blocks stop the API and delete the scratch dir
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, _term)

    out = {"started": datetime.now(UTC).isoformat(timespec="seconds"),
           "machine": {"cpus": os.cpu_count(),
                       "ram_gib": round(psutil.virtual_memory().total / 2**30, 1)},
           "duckdb": duckdb.__version__, "requests": args.requests, "client": args.client,
           "sizes": {},
           "api_env": {k: v for k, v in os.environ.items()
                       if k.startswith("HELIOS_API_") or k == "MALLOC_ARENA_MAX"},
           "load_at_start": os.getloadavg()}
    with contextlib.suppress(OSError, ValueError, KeyError):  # keep other sizes' results
        out["sizes"] = json.loads((RESULTS / "api.json").read_text())["sizes"]
    for n in sizes:
        res: dict = {"client": args.client}
        out["sizes"][str(n)] = res
        try:
            run_size(n, args.requests, args.seconds, args.naive_seconds,
                     args.dashboard_loads, args.tmp, res, args.client)
            console.print(report(res))
        except Exception as e:  # keep what was measured, and why it stopped
            res["failed"] = f"{type(e).__name__}: {e}"
            console.print(f"[red]{n:,} rows: stopped: {res['failed']}[/]")
        path = write_results("api.json", out)
    console.print(f"results in {path}")
    sys.exit(0)


if __name__ == "__main__":
    main()
