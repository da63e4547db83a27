"""Message contracts on the Helios topics, each defined once as a msgspec ``Struct``.

Every message is JSON with a schema version ``v``, the gateway-assigned ``rid`` (unique per
accepted request; OpenRTB ids are not unique across senders), the OpenRTB ``request_id``,
and event timestamps in epoch milliseconds. The Kafka key is always ``rid``.

Producers encode and consumers decode with these types: a message that does not match its
type (wrong version, missing field, wrong JSON type) is poison and goes to the dead-letter
topic with msgspec's reason. The DuckDB parse types of the warehouse ingest
(:func:`duckdb_type`) and the field tables of docs/messages.md (checked by a test) come
from the same structs.
"""

from __future__ import annotations

import itertools
import os
import time
import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import msgspec
import orjson
from msgspec import Meta, Struct

from ingest_services.contracts.openrtb import BidRequest

SCHEMA_VERSION = 1
Version = Literal[1]  # a consumer accepts exactly its own version
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: later is poison, not time
EpochMs = Annotated[int, Meta(ge=0, le=MAX_EPOCH_MS,
                              description="milliseconds since the Unix epoch (UTC)")]
# The largest message a Helios producer can write: librdkafka's default message.max.bytes,
# which every Helios producer keeps. Anything larger on a topic was not written by Helios
# (poison): consumers dead-letter it, the ingest rejects it, the gateway answers 413.
MAX_MESSAGE_BYTES = 1_000_000


class RequestEnvelope(Struct, kw_only=True):
    """``bid_requests``: the accepted OpenRTB request, wrapped (see :func:`encode_request`)."""

    v: Version
    rid: str
    received_at: EpochMs
    imp_ids: list[str]
    request: BidRequest  # on the wire: the sender's bytes, verbatim


class Bid(Struct, kw_only=True):
    price: float
    cur: str
    price_usd: float
    crid: str
    interest: str | None = None


class ImpResponse(Struct, kw_only=True, omit_defaults=True):
    """One imp of a ``bid_responses`` message: a bid, or a no-bid (``bid`` null) with its
    reason (``nobid_reason`` is present only then)."""

    imp_id: str
    media: str
    floor_usd: float
    bid: Bid | None
    nobid_reason: str | None = None


class BidResponse(Struct, kw_only=True):
    """``bid_responses``: one per request, every imp in request order."""

    v: Version
    rid: str
    request_id: str | None
    received_at: EpochMs
    bid_at: EpochMs
    at: int | None
    user_id: str | None
    profile: Literal["found", "not_found", "no_user", "unavailable", "circuit_open"]
    enriched: bool
    segment: str
    interest_score: float | None
    imps: Annotated[list[ImpResponse], Meta(min_length=1)]


class AuctionOutcome(Struct, kw_only=True):
    """``auction_outcomes``: one per imp of every response."""

    v: Version
    rid: str
    request_id: str | None
    imp_id: str
    media: str | None
    segment: str
    enriched: bool
    at: int
    floor_usd: float
    received_at: EpochMs
    bid_at: EpochMs
    decided_at: EpochMs
    strategy: Literal["market", "threshold"]
    outcome: Literal["won", "lost", "nobid"]
    nobid_reason: str | None = None
    bid_price_usd: float | None = None
    clearing_price_usd: float | None = None
    loss_reason: int | None = None
    competitor_price_usd: float | None = None
    crid: str | None = None


class DeadLetter(Struct, kw_only=True):
    """Headers added to a message sent to ``<topic>.dlq`` (value, key and the original
    headers are kept as received). Header names: ``dlq.`` + the field, ``_`` → ``.``."""

    reason: str
    source_topic: str
    source_partition: int
    source_offset: int
    service: str

    def headers(self) -> list[tuple[str, bytes]]:
        return [(header_name(f), str(getattr(self, f)).encode()) for f in self.__struct_fields__]


def header_name(field: str) -> str:
    return "dlq." + field.replace("_", ".")


H_REASON = header_name("reason")
H_SOURCE_TOPIC = header_name("source_topic")
H_SOURCE_PARTITION = header_name("source_partition")
H_SOURCE_OFFSET = header_name("source_offset")
H_SERVICE = header_name("service")

# topic role → the struct on it (docs/messages.md has one section per role)
TOPIC_CONTRACTS: dict[str, type[Struct]] = {
    "bid_requests": RequestEnvelope,
    "bid_responses": BidResponse,
    "auction_outcomes": AuctionOutcome,
}

_ENCODER = msgspec.json.Encoder()
_DECODERS: dict[type, msgspec.json.Decoder] = {}


def encode(msg: Struct) -> bytes:
    return _ENCODER.encode(msg)


def decode(data: bytes | None, contract: type[Struct]) -> Any:
    """Decode one message value with its contract; raises ``ValueError`` (poison) with
    msgspec's reason (``msgspec.ValidationError`` and ``DecodeError`` are ValueErrors)."""
    if data is None:
        raise ValueError("empty message value")
    dec = _DECODERS.get(contract)
    if dec is None:
        dec = _DECODERS[contract] = msgspec.json.Decoder(contract)
    return dec.decode(data)


_DUCK = {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN"}


def duckdb_type(tp: Any, json_fields: frozenset[str] = frozenset()) -> str:
    """The DuckDB type ``from_json`` parses ``tp`` into: structs become ``{...}`` shapes,
    lists ``[...]``; fields named in ``json_fields`` stay ``JSON``."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        rest = [a for a in get_args(tp) if a is not type(None)]
        return duckdb_type(rest[0], json_fields)
    if get_origin(tp) is Literal:
        return "\"" + _DUCK[type(get_args(tp)[0])] + "\""
    if get_origin(tp) is list:
        return f"[{duckdb_type(get_args(tp)[0], json_fields)}]"
    if isinstance(tp, type) and issubclass(tp, Struct):
        parts = []
        for f in msgspec.structs.fields(tp):
            t = '"JSON"' if f.name in json_fields else duckdb_type(f.type, json_fields)
            parts.append(f'"{f.encode_name}":{t}')
        return "{" + ",".join(parts) + "}"
    return f'"{_DUCK[tp]}"'


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_RID_MASK = (1 << 48) - 1  # 12 hex digits: epoch milliseconds until the year 10889


def rid_at(ms: int, prefix: str, counter: int) -> str:
    """A request id: 12 hex of epoch milliseconds, the 8-hex per-process ``prefix``, 12 hex of
    the process's counter — 32 lowercase hex that sort by time. :func:`new_rid` uses it with
    the clock; benchmarks use it to build historic ids exactly as the gateway would."""
    return f"{ms & _RID_MASK:012x}{prefix}{counter & _RID_MASK:012x}"


def _reseed_rids() -> None:
    global _rid_prefix, _rid_counter, _rid_last_ms
    _rid_prefix = os.urandom(4).hex()
    _rid_counter = itertools.count()
    _rid_last_ms = 0


_rid_prefix, _rid_counter, _rid_last_ms = "", itertools.count(), 0
_reseed_rids()
os.register_at_fork(after_in_child=_reseed_rids)  # a forked worker must not reuse ids


def new_rid() -> str:
    """A unique id for one accepted request (:func:`rid_at` with the clock), an order of
    magnitude cheaper than uuid4 on the gateway's hot path.

    Unique: within a process the counter never repeats; across processes the random
    prefix differs (re-drawn after fork) unless two draw the same 32 bits, and even then
    their ids collide only if they hand out the same counter value in the same millisecond.
    Time-ordered: the millisecond never goes back within a process (a clock step backwards
    holds it), and within one millisecond the counter grows, so a process's ids sort in
    creation order, and ids of all processes sort by time to the millisecond — which lets
    the warehouse skip old row groups by their min/max ``rid``.
    """
    global _rid_last_ms
    ms = time.time_ns() // 1_000_000
    if ms < _rid_last_ms:
        ms = _rid_last_ms
    else:
        _rid_last_ms = ms
    return rid_at(ms, _rid_prefix, next(_rid_counter))


def encode_request(rid: str, raw: bytes, imp_ids: list[str], received_at: int) -> bytes:
    """Wrap the sender's bytes untouched: unknown fields and ``ext`` pass through verbatim."""
    head = orjson.dumps(
        {"v": SCHEMA_VERSION, "rid": rid, "received_at": received_at, "imp_ids": imp_ids}
    )
    return head[:-1] + b',"request":' + raw + b"}"


def loads(data: bytes | None) -> dict:
    """Parse any message value loosely (tools that read every topic, e.g. the audit):
    anything but a JSON object with the current version and a string ``rid`` is poison."""
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


assert get_args(Version) == (SCHEMA_VERSION,)
