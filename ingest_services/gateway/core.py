"""What the gateway does with a body, independent of the web framework.

Both entry points (the FastAPI routes, which carry the OpenAPI contract, and the ASGI fast
path that serves the hot ``POST /bid`` and ``/bids``) call these functions, so there is one
implementation of validation, publishing and the status codes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import orjson
from prometheus_client import Counter, Histogram

from ingest_services.common.metrics import PUBLISH_ERRORS
from ingest_services.contracts import messages as m
from ingest_services.contracts import openrtb
from ingest_services.gateway.publisher import BatchAck, Publisher, QueueFull
from ingest_services.settings import GatewaySettings as Settings

REQUESTS = Counter(
    "bid_requests_total", "Bid requests received",
    ["status"],  # accepted | rejected | too_large | unavailable
)
LATENCY = Histogram(
    "gateway_request_duration_seconds", "Time to answer, including the broker ack",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
ACCEPTED = REQUESTS.labels("accepted")
REJECTED = REQUESTS.labels("rejected")
TOO_LARGE = REQUESTS.labels("too_large")
UNAVAILABLE = REQUESTS.labels("unavailable")
BID_LATENCY, BIDS_LATENCY = LATENCY.labels("/bid"), LATENCY.labels("/bids")
DROPPED = Counter(
    "bid_request_fields_dropped_total",
    "Optional fields dropped from accepted requests because their value was out of range",
    ["field"],
)
RETRY_AFTER = {"Retry-After": "1"}


@dataclass(slots=True)
class Reply:
    status: int
    body: dict
    headers: dict[str, str] | None = None


def error(status: int, error: str, field: str | None = None, reason: str | None = None,
          violations: list[dict] | None = None, headers: dict | None = None) -> Reply:
    body: dict = {"error": error}
    if field is not None:
        body["field"] = field
    if reason is not None:
        body["reason"] = reason
    if violations:
        body["violations"] = violations
    return Reply(status, body, headers)


def _over_message_limit(size: int) -> str:
    return (f"the request would be a {size}-byte message; a message is at most "
            f"{m.MAX_MESSAGE_BYTES} bytes (the producer's message.max.bytes)")


@dataclass(slots=True)
class Checked:
    """An accepted request: what to publish, its imp ids, and any dropped fields."""

    request_id: str
    raw: bytes
    imp_ids: list[str]
    warnings: list[dict]


def check(raw: bytes) -> tuple[Checked | None, list[dict]]:
    """Decode and validate one request with the OpenRTB contract: (checked, []) or
    (None, violations). Out-of-range optional fields are dropped from the bytes published
    and reported as warnings (docs/validation.md)."""
    req, violations = openrtb.check(raw)
    if req is None:
        return None, [v.to_dict() for v in violations]
    dropped = req.out_of_range()
    warnings: list[dict] = []
    if dropped:
        obj = openrtb.drop_fields(orjson.loads(raw), [w.path for w in dropped])
        raw = orjson.dumps(obj)
        for w in dropped:
            DROPPED.labels(w.path).inc()
        warnings = [w.to_dict() for w in dropped]
    return Checked(req.id, raw, [i.id for i in req.imp], warnings), []


class GatewayCore:
    def __init__(self, settings: Settings, publisher: Publisher) -> None:
        self.s = settings
        self.publisher = publisher
        self.bid_limit = settings.gateway_max_body_bytes
        self.batch_limit = settings.gateway_max_body_bytes * 64
        self.max_lines = settings.gateway_max_batch_lines

    async def bid(self, raw: bytes | None) -> Reply:
        with BID_LATENCY.time():
            return await self._bid(raw)

    async def _bid(self, raw: bytes | None) -> Reply:
        if raw is None:
            TOO_LARGE.inc()
            return error(413, "body too large", reason=f"limit is {self.bid_limit} bytes")
        ok, violations = check(raw)
        if ok is None:
            REJECTED.inc()
            first = violations[0]
            return error(400, "invalid bid request", first["field"], first["reason"],
                         violations)
        rid = m.new_rid()
        value = m.encode_request(rid, ok.raw, ok.imp_ids, m.now_ms())
        if len(value) > m.MAX_MESSAGE_BYTES:
            TOO_LARGE.inc()
            return error(413, "body too large", reason=_over_message_limit(len(value)))
        try:
            # a guard only: librdkafka reports every message by message.timeout.ms
            async with asyncio.timeout(self.s.gateway_ack_timeout_s + 1):
                err = await self.publisher.publish(rid, value)
        except QueueFull:
            err = "producer queue full"
        except TimeoutError:
            err = "broker did not acknowledge in time"
        if err is not None:
            PUBLISH_ERRORS.inc()
            UNAVAILABLE.inc()
            return error(503, "broker unavailable", reason=str(err), headers=RETRY_AFTER)
        ACCEPTED.inc()
        body = {"id": ok.request_id, "status": "accepted", "rid": rid}
        if ok.warnings:
            body["warnings"] = ok.warnings
        return Reply(202, body)

    async def bids(self, raw: bytes | None) -> Reply:
        with BIDS_LATENCY.time():
            return await self._bids(raw)

    async def _bids(self, raw: bytes | None) -> Reply:
        if raw is None:
            TOO_LARGE.inc()
            return error(413, "body too large", reason=f"limit is {self.batch_limit} bytes")
        # cheap pre-check; only a body with that many newlines has its non-blank lines counted
        if raw.count(b"\n") >= self.max_lines and \
                sum(1 for x in raw.split(b"\n") if x.strip()) > self.max_lines:
            TOO_LARGE.inc()
            return error(413, "too many lines",
                         reason=f"limit is {self.max_lines} NDJSON lines per body "
                                f"(HELIOS_GATEWAY_MAX_BATCH_LINES); split the batch")
        batch = BatchAck(asyncio.get_running_loop())
        rejected: list[dict] = []
        failed: dict[int, str] = {}
        accepted_lines: list[int] = []
        warned: list[dict] = []
        now = m.now_ms()
        for lineno, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            ok, violations = check(line)
            if ok is None:
                rejected.append({"line": lineno, **violations[0]})
                continue
            if ok.warnings:
                warned.extend({"line": lineno, **w} for w in ok.warnings)
            rid = m.new_rid()
            value = m.encode_request(rid, ok.raw, ok.imp_ids, now)
            if len(value) > m.MAX_MESSAGE_BYTES:
                rejected.append({"line": lineno, "field": "",
                                 "reason": _over_message_limit(len(value))})
                continue
            for attempt in range(50):  # queue full: back off briefly, then give up
                try:
                    self.publisher.produce_line(rid, value, batch, lineno)
                    accepted_lines.append(lineno)
                    break
                except QueueFull:
                    if attempt == 49:
                        failed[lineno] = "producer queue full"
                    await asyncio.sleep(0.01)
        batch.close()
        try:
            await asyncio.wait_for(batch.future, self.s.gateway_ack_timeout_s + 1)
        except TimeoutError:
            for ln in accepted_lines:
                batch.failed.setdefault(ln, "broker did not acknowledge in time")
        failed.update({k: v for k, v in batch.failed.items() if k >= 0})
        n_ok = len(accepted_lines) - len([k for k in batch.failed if k >= 0])
        ACCEPTED.inc(n_ok)
        REJECTED.inc(len(rejected))
        UNAVAILABLE.inc(len(failed))
        if failed:
            PUBLISH_ERRORS.inc(len(failed))
        body = {
            "accepted": n_ok,
            "rejected": rejected,
            "failed": [{"line": k, "reason": v} for k, v in sorted(failed.items())],
        }
        if warned:
            body["warnings"] = [w for w in warned if w["line"] not in failed]
        if failed and n_ok == 0:
            return Reply(503, body, RETRY_AFTER)
        return Reply(200, body)
