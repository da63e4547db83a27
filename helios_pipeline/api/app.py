"""The analytics API and the advertiser dashboard (docs/api.md).

Keeps the paths and shapes of the system Helios replaces (a Django REST Framework API), so
its clients keep working, and adds the request story. Reads only the serving snapshot
(store.py), so it never blocks, and is never blocked by, a Dagster run writing the
warehouse. Every response carries ``X-Data-As-Of``. With ``HELIOS_API_KEYS`` set, ``/api/*``
needs a key (ingest_services/common/auth.py); the page, probes, metrics and docs stay open.
Handlers are ``async``: an answer already cached for this snapshot is sent from the event
loop without a thread hop; so is a story or one outcome read from the snapshot's stories
files (a SQLite lookup, cheaper than the hop); a DuckDB query runs in the thread pool (DuckDB
releases the GIL while it scans). The ``X-Data-As-Of`` header and the metrics come from a
plain ASGI middleware, not ``@app.middleware("http")`` (Starlette's BaseHTTPMiddleware,
which streams every response through an extra task). The CPU per call this saves is
measured only together with the rest of the afternoon's changes (bench/README.md).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import duckdb
import orjson
from anyio import to_thread
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helios_pipeline.api import queries as q
from helios_pipeline.api.models import (
    DailyRow,
    Health,
    Outcome,
    OutcomePage,
    RequestStory,
    Stats,
)
from helios_pipeline.api.store import ResponseCache, Snapshot, SnapshotStore
from ingest_services.common import auth, docs_page
from ingest_services.common.json_response import JSON
from ingest_services.settings import ApiSettings, get_settings

STATIC = Path(__file__).with_name("static")
API_THREADS = 4  # anyio's default is 40; measured: 7 MiB less RSS at concurrency 8


# Handlers return JSON / encoded bytes directly: the response models document the shapes
# (and tests check them), but re-validating thousands of rows per call cost ~20 % of a list
# or breakdown request (py-spy in bench/api.py).
REQUESTS = Counter("api_requests_total", "API requests", ["endpoint", "status"])
LATENCY = Histogram("api_request_duration_seconds", "API answer time", ["endpoint"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
SNAPSHOT_AGE = Gauge("serving_snapshot_age_seconds",
                     "Seconds since the snapshot the API answers from was published")
SNAPSHOT_ROWS = Gauge("serving_snapshot_rows", "Outcome rows in the serving snapshot")
SNAPSHOT_PUBLISHED = Gauge("serving_snapshot_published_timestamp_seconds",
                           "When the snapshot the API answers from was published (Unix time)")


class AsOfMiddleware:
    """Adds ``X-Data-As-Of`` (the snapshot answering now) to every response and records the
    ``/api/`` endpoints' latency and status counts."""

    def __init__(self, app: ASGIApp, store: SnapshotStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_as_of(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                snap = self.store._current
                MutableHeaders(scope=message).append(
                    "X-Data-As-Of", "none" if snap is None else snap.as_of_header)
            await send(message)

        try:
            await self.app(scope, receive, send_as_of)
        finally:
            endpoint = getattr(scope.get("route"), "path", "other")
            if endpoint.startswith("/api/"):
                LATENCY.labels(endpoint).observe(time.perf_counter() - t0)
                REQUESTS.labels(endpoint, str(status)).inc()


async def _filters(
    request: Request,
    user_id: Annotated[str | None, Query(description="OpenRTB user.id")] = None,
    site_domain: Annotated[str | None, Query(examples=["news.example.com"])] = None,
    win_status: Annotated[bool | None, Query(description="true: won only")] = None,
    enriched: Annotated[bool | None, Query(description="bid with a user profile")] = None,
    min_price: Annotated[float | None, Query(ge=0, description="bid CPM, USD")] = None,
    max_price: Annotated[float | None, Query(ge=0, description="bid CPM, USD")] = None,
    date_from: Annotated[date | None, Query(description="UTC day, inclusive")] = None,
    date_to: Annotated[date | None, Query(description="UTC day, inclusive")] = None,
    media_type: Annotated[Literal["banner", "video", "audio", "native"] | None, Query()] = None,
    segment: Annotated[str | None, Query(examples=["IAB3"])] = None,
    outcome: Annotated[Literal["won", "lost", "nobid"] | None, Query()] = None,
    loss_reason: Annotated[int | None, Query(ge=0, description="OpenRTB loss reason")] = None,
) -> q.Filters:
    if date_from and date_to and date_from > date_to:
        raise RequestValidationError([{
            "loc": ("query", "date_to"), "type": "value_error",
            "msg": f"date_to ({date_to}) is before date_from ({date_from})",
            "input": str(date_to)}])
    max_days = request.app.state.max_days
    if date_from and date_to and (date_to - date_from).days + 1 > max_days:
        raise RequestValidationError([{
            "loc": ("query", "date_to"), "type": "value_error",
            "msg": f"date_from..date_to spans {(date_to - date_from).days + 1} days; at most "
                   f"{max_days} (HELIOS_API_MAX_DAYS): narrow the range",
            "input": str(date_to)}])
    if min_price is not None and max_price is not None and min_price > max_price:
        raise RequestValidationError([{
            "loc": ("query", "max_price"), "type": "value_error",
            "msg": f"max_price ({max_price}) is below min_price ({min_price})",
            "input": max_price}])
    return q.Filters(user_id, site_domain, win_status, enriched, min_price, max_price,
                     date_from, date_to, media_type, segment, outcome, loss_reason)


Filters = Annotated[q.Filters, Depends(_filters)]
Page = Annotated[int, Query(ge=1, description="page number, from 1")]
PageSize = Annotated[int, Query(ge=1, le=1000, description="rows per page (max 1000)")]
Ordering = Annotated[str, Query(pattern=r"^-?(timestamp|win_price|bid_price)$",
                                description="timestamp, win_price or bid_price; - for desc")]


def _build_timed(build) -> tuple[bytes, float]:
    """``build()`` encoded, and the CPU seconds this thread spent on it (DuckDB runs an API
    query on the calling thread: one thread per query, store.py), for the cache's admission."""
    t0 = time.thread_time()
    body = orjson.dumps(build())
    return body, time.thread_time() - t0


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    s = settings or get_settings(ApiSettings)
    store = SnapshotStore(s.serving, s.api_memory_mb)

    app = FastAPI(
        title="Helios analytics API",
        version="1.0.0",
        summary="Auction outcomes, statistics and request stories, from the serving snapshot.",
        description="Paths and shapes of the system Helios replaces, plus "
                    "`/api/requests/{rid}/`. See docs/api.md for freshness.",
        docs_url=None,  # served from the package, not a CDN
        redoc_url=None,
    )
    docs_page.install(app)
    app.state.store = store
    app.state.max_days = s.api_max_days
    cache = ResponseCache(max_entries=s.api_cache_entries)

    def snapshot() -> Snapshot | None:
        return store.current()

    async def answer(request: Request, snap: Snapshot | None, build,
                     inline: bool = False) -> Response:
        """``build()``'s answer, from the cache when this snapshot already gave it (in the
        event loop); else ``build()`` and the encoding run in the thread pool, or, when
        ``inline`` (a story from the stories file: ~0.02 ms), in the event loop: a hop to a
        thread and back cost more than that (0.15 ms of CPU on a 2-core VM, measured)."""
        if snap is None:
            return JSON(build())
        key = (snap.generation, request.scope["path"], request.scope["query_string"])
        body = cache.get(key)
        if body is None:
            body, cost = (_build_timed(build) if inline
                          else await run_in_threadpool(_build_timed, build))
            cache.put(key, body, cost)
        return Response(body, media_type="application/json")

    @app.exception_handler(sqlite3.Error)  # a stories file (store.py)
    @app.exception_handler(duckdb.Error)
    async def busy(_request: Request, exc: Exception):
        """A query the snapshot could not answer now (e.g. out of memory): a clear 503 with
        Retry-After, never a 500 with a traceback."""
        return JSONResponse({"detail": f"the serving store could not answer now: "
                                       f"{type(exc).__name__}"},
                            status_code=503, headers={"Retry-After": "1"})

    app.add_middleware(AsOfMiddleware, store=store)

    def _page(request: Request, f: q.Filters, page: int, page_size: int, ordering: str,
              snap: Snapshot | None) -> dict:
        if snap is None:
            return {"count": 0, "next": None, "previous": None, "results": []}
        where, params = f.where()
        source = f.source()
        if source != "outcomes":
            count = snap.query(f"SELECT coalesce(sum(n), 0) FROM {source}{where}", params)[0][0]
        else:
            count = snap.query(f"SELECT count(*) FROM outcomes{where}", params)[0][0]
        desc = ordering.startswith("-")
        col = q.ORDERING[ordering.lstrip("-")]
        rows = snap.page_rows(
            where, params, f"{col} {'DESC' if desc else 'ASC'} NULLS LAST, rid, imp_id",
            page_size, (page - 1) * page_size)
        url = request.url
        return {
            "count": count,
            "next": str(url.include_query_params(page=page + 1))
            if page * page_size < count else None,
            "previous": str(url.include_query_params(page=page - 1)) if page > 1 else None,
            "results": [q.outcome_json(r) for r in rows],
        }

    @app.get("/api/outcomes/", response_model=OutcomePage, summary="Outcomes, paginated")
    async def outcomes(request: Request, f: Filters, page: Page = 1, page_size: PageSize = 100,
                 ordering: Ordering = "-timestamp"):
        snap = snapshot()
        return await answer(request, snap,
                            lambda: _page(request, f, page, page_size, ordering, snap))

    @app.get("/api/outcomes/winners/", response_model=OutcomePage, summary="Won outcomes")
    async def winners(request: Request, f: Filters, page: Page = 1, page_size: PageSize = 100,
                ordering: Ordering = "-timestamp"):
        if f.outcome not in (None, "won") or f.win_status is False:
            return {"count": 0, "next": None, "previous": None, "results": []}
        snap = snapshot()
        won = q.Filters(**{**f.__dict__, "outcome": "won"})
        return await answer(request, snap,
                            lambda: _page(request, won, page, page_size, ordering, snap))

    @app.get("/api/outcomes/stats/", response_model=Stats, summary="Totals and KPIs")
    async def stats(request: Request, f: Filters):
        snap = snapshot()
        if snap is None:
            return q.kpis(0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0)
        sql, params = q.sums_sql(f)
        return await answer(request, snap, lambda: q.kpis(*snap.query(sql, params)[0]))

    @app.get("/api/outcomes/daily_stats/", response_model=list[DailyRow],
             response_model_exclude_unset=True,
             summary="Per day (optionally per site, segment, media type or hour)")
    async def daily_stats(request: Request, f: Filters, group_by: Annotated[
            Literal["site", "segment", "media_type", "hour"] | None, Query()] = None):
        snap = snapshot()
        if snap is None:
            return []
        if group_by is None:
            sql, params = q.sums_sql(f, "NULL")
        else:
            sql, params = q.sums_sql(f, q.GROUP_BY[group_by])
        return await answer(request, snap, lambda: [
            q.daily_row(r[0], r[2:], r[1], group_by is not None)
            for r in snap.query(sql, params)])

    @app.get("/api/outcomes/{outcome_id}/", response_model=Outcome,
             responses={404: {"description": "No such outcome"}},
             summary="One outcome; id is <rid>:<imp_id>")
    async def outcome(request: Request, outcome_id: str):
        rid, sep, imp_id = outcome_id.partition(":")
        snap = snapshot()
        if not sep or snap is None:
            raise HTTPException(404, f"no outcome {outcome_id!r} (ids are <rid>:<imp_id>)")

        def build() -> dict:
            rows = [r for r in snap.story_rows(rid) if r[1] == imp_id]
            if not rows:
                raise HTTPException(404, f"no outcome {outcome_id!r}")
            return q.outcome_json(rows[0])
        return await answer(request, snap, build, inline=snap.stories is not None)

    @app.get("/api/requests/{rid}/", response_model=RequestStory,
             responses={404: {"description": "No such request (or not ingested yet)"}},
             summary="The whole story of one bid request")
    async def request_story(request: Request, rid: str):
        snap = snapshot()
        if snap is None:
            raise HTTPException(404, f"no request {rid!r} in the serving snapshot")

        def build() -> dict:
            rows = snap.story_rows(rid)
            if not rows:
                raise HTTPException(404, f"no request {rid!r} in the serving snapshot")
            return q.story_json(rows)
        return await answer(request, snap, build, inline=snap.stories is not None)

    @app.get("/healthz", response_model=Health, summary="Liveness")
    def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}},
             summary="Readiness: a serving snapshot is loaded")
    def readyz():
        if snapshot() is None:
            return JSONResponse({"status": "no serving snapshot yet"}, status_code=503)
        return {"status": "ready"}

    @app.get("/metrics", response_class=Response, summary="Prometheus metrics")
    def metrics():
        snap = snapshot()
        if snap is not None:
            SNAPSHOT_AGE.set(max(0.0, time.time() - snap.published_at.timestamp()))
            SNAPSHOT_ROWS.set(snap.rows)
            SNAPSHOT_PUBLISHED.set(snap.published_at.timestamp())
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard():
        index = STATIC / "index.html"
        if not index.is_file():
            raise HTTPException(404, "dashboard assets are not installed")
        return FileResponse(index)

    @app.on_event("startup")
    async def _threads() -> None:
        # Handlers' queries run in anyio's thread pool (40 threads by default), each thread
        # with its own DuckDB cursor; at most QUERY_SLOTS queries run at once anyway, so a
        # few threads serve as many requests with less memory (bench/README.md).
        to_thread.current_default_thread_limiter().total_tokens = API_THREADS

    @app.on_event("shutdown")
    def _close() -> None:
        store.close()

    keys = s.api_keys.get_secret_value()
    if auth.parse_keys(keys):  # outermost: a request without a key reaches nothing else
        app.add_middleware(
            auth.ApiKeyMiddleware,
            guard=auth.KeyGuard(auth.parse_keys(keys), s.api_rate_per_key, "HELIOS_API_KEYS"),
            body=lambda _status, error, reason: {"detail": f"{error}: {reason}"},
            open_paths=auth.OPEN_PATHS | {"/"}, open_prefixes=(*auth.OPEN_PREFIXES, "/static/"))
        base_openapi = app.openapi
        app.openapi = lambda: auth.document(base_openapi())  # type: ignore[method-assign]
    return app
