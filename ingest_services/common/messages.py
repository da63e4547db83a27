"""Message contracts on the Helios topics (documented in docs/messages.md).

Every message is JSON with a schema version ``v``, the gateway-assigned ``rid`` (unique per
accepted request; OpenRTB ids are not unique across senders), the OpenRTB ``request_id``,
and event timestamps in epoch milliseconds. The Kafka key is always ``rid``.
"""

from __future__ import annotations

import time
import uuid

import orjson

SCHEMA_VERSION = 1

# Dead-letter headers (DESIGN.md: the reason travels in a header).
H_REASON = "dlq.reason"
H_SOURCE_TOPIC = "dlq.source.topic"
H_SOURCE_PARTITION = "dlq.source.partition"
H_SOURCE_OFFSET = "dlq.source.offset"
H_SERVICE = "dlq.service"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def new_rid() -> str:
    """A unique id for one accepted request (32 hex chars)."""
    return uuid.uuid4().hex


def encode_request(rid: str, raw: bytes, imp_ids: list[str], received_at: int) -> bytes:
    """Wrap the sender's bytes untouched: unknown fields and ``ext`` pass through verbatim."""
    head = orjson.dumps(
        {"v": SCHEMA_VERSION, "rid": rid, "received_at": received_at, "imp_ids": imp_ids}
    )
    return head[:-1] + b',"request":' + raw + b"}"


def dumps(obj: dict) -> bytes:
    return orjson.dumps(obj)


def loads(data: bytes | None) -> dict:
    """Parse a message value; anything but a JSON object with the current version is poison."""
    if data is None:
        raise ValueError("empty message value")
    obj = orjson.loads(data)
    if not isinstance(obj, dict):
        raise ValueError("message value is not a JSON object")
    if obj.get("v") != SCHEMA_VERSION:
        raise ValueError(f"unsupported schema version {obj.get('v')!r}")
    if not isinstance(obj.get("rid"), str):
        raise ValueError("message has no rid")
    return obj
