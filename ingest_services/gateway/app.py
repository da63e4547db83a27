"""The ingest gateway: validates OpenRTB 2.5/2.6 bid requests and publishes them.

``202`` means the broker acknowledged the message; ``400`` names the field and the rule
broken and publishes nothing; ``413`` for bodies over the limit (bytes, or NDJSON lines
for ``/bids``); ``503`` with ``Retry-After`` when the broker is unreachable or the producer
queue is full. With ``HELIOS_GATEWAY_API_KEYS`` set, ``/bid`` and ``/bids`` need a key
(``401``) and are rate-limited per key (``429``); see ingest_services/common/auth.py.

The FastAPI app carries the routes, the OpenAPI contract, probes and metrics. In front of
it, :class:`FastPath` answers the two hot routes straight from ASGI with the same core
functions: FastAPI's per-request routing and middleware cost ~10x the gateway's own work
(measured with py-spy; see docs/performance.md).
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.concurrency import run_in_threadpool

from ingest_services.common import auth, docs_page
from ingest_services.common.json_response import JSON
from ingest_services.gateway.core import GatewayCore, Reply
from ingest_services.gateway.publisher import Publisher
from ingest_services.gateway.schemas import (
    BID_REQUEST_BODY,
    NDJSON_BODY,
    Accepted,
    BatchResult,
    ErrorBody,
    Health,
)
from ingest_services.settings import GatewaySettings, get_settings

log = logging.getLogger(__name__)


def _registry():
    """This process's registry, or with several workers (server.py set
    PROMETHEUS_MULTIPROC_DIR before they started) one that sums every worker's files."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        from prometheus_client import REGISTRY

        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)
    return registry


def _to_response(reply: Reply) -> JSON:
    return JSON(reply.body, status_code=reply.status, headers=reply.headers)


class FastPath:
    """ASGI front for ``POST /bid`` and ``POST /bids``; everything else goes to FastAPI."""

    def __init__(self, app: FastAPI, state: dict) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path")
        if scope["type"] != "http" or scope["method"] != "POST" or path not in ("/bid", "/bids"):
            await self.app(scope, receive, send)
            return
        core: GatewayCore = self.state["core"]
        limit = core.bid_limit if path == "/bid" else core.batch_limit
        raw = await self._body(scope, receive, limit)
        reply = await (core.bid(raw) if path == "/bid" else core.bids(raw))
        body = orjson.dumps(reply.body)
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(body)).encode())]
        if reply.headers:
            headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    async def _body(scope, receive, limit: int) -> bytes | None:
        """The body, or None once it exceeds ``limit`` (checked before and while reading)."""
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return None
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            more = msg.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def create_app(settings: GatewaySettings | None = None) -> FastPath | auth.ApiKeyMiddleware:
    s = settings or get_settings(GatewaySettings)
    state: dict = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        publisher = Publisher(s)
        state["publisher"] = publisher
        state["core"] = GatewayCore(s, publisher)
        log.info("gateway ready", extra={"topic": s.topic_requests})
        yield
        undelivered = await run_in_threadpool(publisher.close)
        log.info("gateway stopped", extra={"undelivered": undelivered})

    app = FastAPI(
        title="Helios ingest gateway",
        version="1.0.0",
        summary="Accepts OpenRTB 2.5/2.6 bid requests and publishes them to Kafka.",
        default_response_class=JSON,
        lifespan=lifespan,
        docs_url=None,  # served from the package below, not a CDN
        redoc_url=None,
    )
    docs_page.install(app)

    @app.post(
        "/bid",
        status_code=202,
        response_model=Accepted,
        responses={
            400: {"model": ErrorBody, "description": "Invalid request; nothing published"},
            413: {"model": ErrorBody, "description": "Body over the size limit"},
            503: {"model": ErrorBody, "description": "Broker unavailable or queue full"},
        },
        openapi_extra={"requestBody": BID_REQUEST_BODY},
        summary="Submit one OpenRTB BidRequest",
    )
    async def bid(request: Request):
        core: GatewayCore = state["core"]
        raw = await FastPath._body(request.scope, request.receive, core.bid_limit)
        return _to_response(await core.bid(raw))

    @app.post(
        "/bids",
        response_model=BatchResult,
        responses={
            413: {"model": ErrorBody, "description": "Body over the batch size limit"},
            503: {"model": ErrorBody, "description": "No line could be published"},
        },
        openapi_extra={"requestBody": NDJSON_BODY},
        summary="Submit many BidRequests as NDJSON (one per line)",
    )
    async def bids(request: Request):
        core: GatewayCore = state["core"]
        raw = await FastPath._body(request.scope, request.receive, core.batch_limit)
        return _to_response(await core.bids(raw))

    @app.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", response_model=Health, responses={503: {"model": Health}},
             summary="Readiness: the broker is reachable and the topic exists")
    async def readyz():
        ok = await run_in_threadpool(state["publisher"].broker_reachable)
        if ok:
            return {"status": "ready"}
        return JSON({"status": "broker unreachable"}, status_code=503)

    @app.get("/metrics", summary="Prometheus metrics (summed over worker processes)",
             response_class=Response)
    async def metrics():
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)

    keys = s.gateway_api_keys.get_secret_value()
    if auth.parse_keys(keys):
        base_openapi = app.openapi
        app.openapi = lambda: auth.document(base_openapi())  # type: ignore[method-assign]
    # no keys configured: FastPath itself, not wrapped, so auth off costs nothing per request
    return auth.protect(FastPath(app, state), keys, s.gateway_rate_per_key,
                        "HELIOS_GATEWAY_API_KEYS",
                        lambda _status, error, reason: {"error": error, "reason": reason})
