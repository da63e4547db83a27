"""The ingest gateway: validates OpenRTB 2.5/2.6 bid requests and publishes them.

``202`` means the broker acknowledged the message; ``400`` names the field and the rule
broken and publishes nothing; ``413`` for bodies over the limit; ``503`` with
``Retry-After`` when the broker is unreachable or the producer queue is full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from helios_pipeline.settings import Settings, get_settings
from ingest_services.common import messages as m
from ingest_services.common.metrics import PUBLISH_ERRORS
from ingest_services.gateway.publisher import BatchAck, Publisher, QueueFull
from ingest_services.gateway.schemas import (
    BID_REQUEST_BODY,
    NDJSON_BODY,
    Accepted,
    BatchResult,
    ErrorBody,
    Health,
)
from ingest_services.gateway.validation import validate_bid_request

log = logging.getLogger(__name__)

REQUESTS = Counter(
    "bid_requests_total", "Bid requests received",
    ["status"],  # accepted | rejected | too_large | unavailable
)
LATENCY = Histogram(
    "gateway_request_duration_seconds", "Time to answer, including the broker ack",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

RETRY_AFTER = {"Retry-After": "1"}


class JSON(Response):
    """orjson-encoded JSON: the fast codec DESIGN.md asks for, on every response."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return orjson.dumps(content)


def _error(status: int, error: str, field: str | None = None, reason: str | None = None,
           violations: list[dict] | None = None, headers: dict | None = None) -> JSON:
    body: dict = {"error": error}
    if field is not None:
        body["field"] = field
    if reason is not None:
        body["reason"] = reason
    if violations:
        body["violations"] = violations
    return JSON(body, status_code=status, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` (checked before and while reading)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _check(raw: bytes) -> tuple[dict | None, list[dict]]:
    """Parse and validate one request: (request, []) or (None, violations)."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return None, [{"field": "", "reason": f"body is not valid JSON: {exc}"}]
    violations = validate_bid_request(obj)
    if violations:
        return None, [v.to_dict() for v in violations]
    return obj, []


def create_app(settings: Settings | None = None) -> FastAPI:
    s = settings or get_settings()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        state["publisher"] = Publisher(s)
        log.info("gateway ready", extra={"topic": s.topic_requests})
        yield
        undelivered = await run_in_threadpool(state["publisher"].close)
        log.info("gateway stopped", extra={"undelivered": undelivered})

    app = FastAPI(
        title="Helios ingest gateway",
        version="1.0.0",
        summary="Accepts OpenRTB 2.5/2.6 bid requests and publishes them to Kafka.",
        default_response_class=JSON,
        lifespan=lifespan,
    )

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
        started = time.perf_counter()
        try:
            raw = await _read_body(request, s.gateway_max_body_bytes)
            if raw is None:
                REQUESTS.labels("too_large").inc()
                return _error(413, "body too large",
                              reason=f"limit is {s.gateway_max_body_bytes} bytes")
            obj, violations = _check(raw)
            if obj is None:
                REQUESTS.labels("rejected").inc()
                first = violations[0]
                return _error(400, "invalid bid request", first["field"], first["reason"],
                              violations)
            rid = m.new_rid()
            value = m.encode_request(rid, raw, [i["id"] for i in obj["imp"]], m.now_ms())
            try:
                err = await asyncio.wait_for(
                    state["publisher"].publish(rid, value), s.gateway_ack_timeout_s + 1
                )
            except QueueFull:
                err = "producer queue full"
            except TimeoutError:
                err = "broker did not acknowledge in time"
            if err is not None:
                PUBLISH_ERRORS.inc()
                REQUESTS.labels("unavailable").inc()
                return _error(503, "broker unavailable", reason=str(err), headers=RETRY_AFTER)
            REQUESTS.labels("accepted").inc()
            return JSON(
                {"id": obj["id"], "status": "accepted", "rid": rid}, status_code=202
            )
        finally:
            LATENCY.labels("/bid").observe(time.perf_counter() - started)

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
        started = time.perf_counter()
        publisher: Publisher = state["publisher"]
        try:
            raw = await _read_body(request, s.gateway_max_body_bytes * 64)
            if raw is None:
                return _error(413, "body too large",
                              reason=f"limit is {s.gateway_max_body_bytes * 64} bytes")
            batch = BatchAck(asyncio.get_running_loop())
            rejected: list[dict] = []
            failed: dict[int, str] = {}
            accepted_lines: list[int] = []
            now = m.now_ms()
            for lineno, line in enumerate(raw.split(b"\n"), start=1):
                if not line.strip():
                    continue
                obj, violations = _check(line)
                if obj is None:
                    first = violations[0]
                    rejected.append({"line": lineno, **first})
                    continue
                rid = m.new_rid()
                value = m.encode_request(rid, line, [i["id"] for i in obj["imp"]], now)
                for attempt in range(50):  # queue full: back off briefly, then give up
                    try:
                        publisher.produce_line(rid, value, batch, lineno)
                        accepted_lines.append(lineno)
                        break
                    except QueueFull:
                        if attempt == 49:
                            failed[lineno] = "producer queue full"
                        await asyncio.sleep(0.01)
            batch.close()
            try:
                await asyncio.wait_for(batch.future, s.gateway_ack_timeout_s + 1)
            except TimeoutError:
                for ln in accepted_lines:
                    batch.failed.setdefault(ln, "broker did not acknowledge in time")
            failed.update({k: v for k, v in batch.failed.items() if k >= 0})
            n_ok = len(accepted_lines) - len(batch.failed)
            REQUESTS.labels("accepted").inc(n_ok)
            REQUESTS.labels("rejected").inc(len(rejected))
            REQUESTS.labels("unavailable").inc(len(failed))
            if failed:
                PUBLISH_ERRORS.inc(len(failed))
            body = {
                "accepted": n_ok,
                "rejected": rejected,
                "failed": [{"line": k, "reason": v} for k, v in sorted(failed.items())],
            }
            if failed and n_ok == 0:
                return JSON(body, status_code=503, headers=RETRY_AFTER)
            return JSON(body)
        finally:
            LATENCY.labels("/bids").observe(time.perf_counter() - started)

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

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics():
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
