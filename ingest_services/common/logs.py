"""JSON logs, one object per line: greppable in a terminal, parseable by log shippers.

Logs are read by more people than the data is, so the formatter redacts on the way out
(issue #9): a field named like a user id is replaced by a short hash (:func:`hash_id`, the
same id always hashes the same, so a user's lines still correlate), a field named like a
secret (key, token, authorization, password) by ``[redacted]``, and any long string value
(a payload that slipped into a log call) is cut to :data:`MAX_VALUE` characters.
"""

from __future__ import annotations

import hashlib
import logging
import sys

import orjson

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
MAX_VALUE = 256  # characters of one string field; more is a payload, not a log value
_USER_FIELDS = frozenset({"user_id", "userid", "user", "uid", "buyeruid"})
_SECRET_WORDS = ("key", "token", "authorization", "password", "secret")


def hash_id(value: object) -> str:
    """What a log may say about a user id: ``h:`` and 12 hex digits of its SHA-256."""
    return "h:" + hashlib.sha256(str(value).encode()).hexdigest()[:12]


def _clip(value: str) -> str:
    if len(value) <= MAX_VALUE:
        return value
    return f"{value[:MAX_VALUE]}…(+{len(value) - MAX_VALUE} chars)"


def redact(name: str, value: object) -> object:
    """One extra field as it may appear in a log line."""
    lname = name.lower()
    if lname in _USER_FIELDS:
        return None if value is None else hash_id(value)
    if any(w in lname for w in _SECRET_WORDS):
        return "[redacted]"
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return _clip(value)
    return value


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": _clip(record.getMessage()),
        }
        out.update({k: redact(k, v) for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=lambda v: _clip(str(v))).decode()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
