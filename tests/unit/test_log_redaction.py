"""The JSON log formatter redacts on the way out: user ids hashed, secrets dropped, payloads
clipped (ingest_services/common/logs.py)."""

from __future__ import annotations

import logging

import orjson

from ingest_services.common.logs import MAX_VALUE, JsonFormatter, hash_id


def line(**extra: object) -> dict:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "hello", None, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return orjson.loads(JsonFormatter().format(record))


def test_user_ids_are_hashed_stably():
    out = line(user_id="alice-123", buyeruid="alice-123")
    assert out["user_id"] == out["buyeruid"] == hash_id("alice-123")
    assert "alice" not in orjson.dumps(out).decode()
    assert hash_id("alice-123") != hash_id("bob-456")


def test_secrets_are_redacted():
    out = line(api_key="k-123", authorization="Bearer k-123", token="t", password="p")
    assert "k-123" not in orjson.dumps(out).decode()
    assert out["api_key"] == out["authorization"] == "[redacted]"


def test_payloads_are_clipped():
    body = '{"imp":[' + "x" * 10_000 + "]}"
    out = line(body=body, raw=body.encode())
    assert len(out["body"]) < MAX_VALUE + 40 and out["body"].endswith("chars)")
    assert out["raw"] == f"<{len(body)} bytes>"
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "got %s", (body,), None)
    assert len(orjson.loads(JsonFormatter().format(record))["msg"]) < MAX_VALUE + 40
