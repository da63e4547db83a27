"""Optional API-key authentication and per-key rate limits, shared by the gateway and the
analytics API (one implementation, two settings: ``HELIOS_GATEWAY_API_KEYS`` and
``HELIOS_API_KEYS``).

Why here and shaped like this:

- Off unless keys are configured, and then the app is returned *unwrapped*
  (:func:`protect`), so the gateway's hot path pays nothing for a feature it does not use.
- Keys come from the environment (a Kubernetes Secret in deployment), comma-separated, so a
  new key can be added before the old one is removed (rotation without downtime).
- The key travels in ``X-API-Key`` or ``Authorization: Bearer <key>``; it is compared with
  every configured key by :func:`hmac.compare_digest` (constant time, and no early exit
  that would tell which key came close).
- Health, readiness, metrics and the docs stay open: probes and Prometheus do not carry
  keys, and the OpenAPI document is no secret.
- A rate limit per key: a token bucket (``rate`` per second, one second's worth of burst)
  per configured key, *per process* (several gateway workers or API replicas each allow
  ``rate``; there is no shared store). Over the limit: 429 with ``Retry-After``.
- Keys never reach a log: only :func:`key_id` (a short hash) may be logged.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Callable, Iterable

import orjson

HEADER = "X-API-Key"
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"})
OPEN_PREFIXES = ("/docs-assets/",)
HOW = f"send it in the {HEADER} header (or Authorization: Bearer <key>)"

Body = Callable[[int, str, str], dict]  # (status, error, reason) -> JSON body


def parse_keys(raw: str) -> tuple[bytes, ...]:
    """The configured keys: comma-separated, blanks ignored; empty means auth is off."""
    return tuple(k.strip().encode() for k in raw.split(",") if k.strip())


def key_id(key: bytes | str) -> str:
    """What may be logged about a key: the first 12 hex digits of its SHA-256."""
    data = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(data).hexdigest()[:12]


class TokenBucket:
    """``rate`` tokens per second, at most ``rate`` (one second's worth) in the bucket."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> float:
        """0.0 when a token was taken, else the seconds until one is available."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The key in an ASGI header list: ``X-API-Key`` first, then ``Authorization: Bearer``."""
    bearer = None
    for name, value in headers:
        if name == b"x-api-key":
            return value.strip()
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].strip()
    return bearer


class KeyGuard:
    """Decides one request: None (let it through) or (status, error, reason, headers)."""

    def __init__(self, keys: tuple[bytes, ...], rate_per_key: float, setting: str) -> None:
        if not keys:
            raise ValueError("KeyGuard needs at least one key")
        self.keys = keys
        self.setting = setting
        self.buckets = [TokenBucket(rate_per_key) for _ in keys] if rate_per_key > 0 else None

    def match(self, presented: bytes) -> int | None:
        """Index of the configured key equal to ``presented``; every key is compared."""
        found = None
        for i, key in enumerate(self.keys):
            if hmac.compare_digest(presented, key):
                found = i
        return found

    def check(self, headers: Iterable[tuple[bytes, bytes]]
              ) -> tuple[int, str, str, dict[str, str]] | None:
        presented = presented_key(headers)
        if not presented:
            return 401, "missing API key", f"this endpoint needs an API key: {HOW}", \
                {"WWW-Authenticate": f'Bearer realm="helios", header="{HEADER}"'}
        index = self.match(presented)
        if index is None:
            return 401, "invalid API key", f"the API key is not one of {self.setting}: {HOW}", \
                {"WWW-Authenticate": f'Bearer realm="helios", header="{HEADER}"'}
        if self.buckets is not None:
            wait = self.buckets[index].take()
            if wait:
                rate = self.buckets[index].rate
                return 429, "rate limit exceeded", \
                    f"at most {rate:g} requests/s per API key (per process); retry later", \
                    {"Retry-After": str(max(1, math.ceil(wait)))}
        return None


class ApiKeyMiddleware:
    """ASGI middleware: every HTTP path but the open ones needs a valid key."""

    def __init__(self, app, guard: KeyGuard, body: Body,
                 open_paths: frozenset[str] = OPEN_PATHS,
                 open_prefixes: tuple[str, ...] = OPEN_PREFIXES) -> None:
        self.app = app
        self.guard = guard
        self.body = body
        self.open_paths = open_paths
        self.open_prefixes = open_prefixes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in self.open_paths or path.startswith(self.open_prefixes):
            await self.app(scope, receive, send)
            return
        denied = self.guard.check(scope["headers"])
        if denied is None:
            await self.app(scope, receive, send)
            return
        status, error, reason, extra = denied
        payload = orjson.dumps(self.body(status, error, reason))
        headers = [(b"content-type", b"application/json"),
                   (b"content-length", str(len(payload)).encode()),
                   *((k.lower().encode(), v.encode()) for k, v in extra.items())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def protect(app, keys: str, rate_per_key: float, setting: str, body: Body,
            open_paths: frozenset[str] = OPEN_PATHS,
            open_prefixes: tuple[str, ...] = OPEN_PREFIXES):
    """``app`` behind the key check, or ``app`` itself when no key is configured."""
    parsed = parse_keys(keys)
    if not parsed:
        return app
    return ApiKeyMiddleware(app, KeyGuard(parsed, rate_per_key, setting), body, open_paths,
                            open_prefixes)


def document(openapi: dict) -> dict:
    """Add the two ways to send a key to an OpenAPI document, required on every operation
    but the open ones (so Swagger UI shows an Authorize button)."""
    schemes = openapi.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["ApiKey"] = {"type": "apiKey", "in": "header", "name": HEADER}
    schemes["Bearer"] = {"type": "http", "scheme": "bearer"}
    for path, ops in openapi.get("paths", {}).items():
        if path in OPEN_PATHS:
            continue
        for op in ops.values():
            if isinstance(op, dict):
                op["security"] = [{"ApiKey": []}, {"Bearer": []}]
                op.setdefault("responses", {})["401"] = {
                    "description": f"Missing or invalid API key ({HEADER})"}
                op["responses"]["429"] = {
                    "description": "Rate limit per API key exceeded (see Retry-After)"}
    return openapi
