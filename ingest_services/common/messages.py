"""Message contracts on the Helios topics (documented in docs/messages.md).

Every message is JSON with a schema version ``v``, the gateway-assigned ``rid`` (unique per
accepted request; OpenRTB ids are not unique across senders), the OpenRTB ``request_id``,
and event timestamps in epoch milliseconds. The Kafka key is always ``rid``.
"""

from __future__ import annotations

import itertools
import os
import time

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


_rid_prefix = os.urandom(8).hex()
_rid_counter = itertools.count()


def _reseed_rids() -> None:
    global _rid_prefix, _rid_counter
    _rid_prefix = os.urandom(8).hex()
    _rid_counter = itertools.count()


os.register_at_fork(after_in_child=_reseed_rids)  # a forked worker must not reuse ids


def new_rid() -> str:
    """A unique id for one accepted request: a random per-process prefix and a counter
    (32 hex chars), an order of magnitude cheaper than uuid4 on the gateway's hot path."""
    return f"{_rid_prefix}{next(_rid_counter):016x}"


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
