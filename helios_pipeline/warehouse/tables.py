"""Every warehouse table defined once, as a typed row (a msgspec ``Struct``).

The DDL for DuckDB (the embedded warehouse) and PostgreSQL (the serving store, and the
deployment warehouse of issue #8) is generated from these rows by :func:`ddl`; the docs'
column lists and Dagster's column schemas can be generated the same way. A test compares
the columns of the live tables, after a real ingest, with these definitions.

Column types follow the Python annotation: ``str`` VARCHAR/TEXT, ``int`` BIGINT (``Int32``
INTEGER), ``float`` DOUBLE, ``bool`` BOOLEAN, ``datetime`` TIMESTAMPTZ, ``date`` DATE,
``list[str]`` VARCHAR[]/TEXT[]; ``X | None`` is nullable, anything else NOT NULL.
"""

from __future__ import annotations

import types
from datetime import date, datetime
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin

import msgspec
from msgspec import Meta, Struct

Int32 = Annotated[int, Meta(extra={"sql": "INTEGER"})]


class Table(Struct, kw_only=True):
    """Base of a table row: ``__table__`` names it, ``__key__`` is its key (a PRIMARY KEY
    in the DDL, except where the warehouse keeps it unique itself: the raw tables and
    ``outcomes`` are created with ``ddl(..., key=False)``, see schema.RAW_TABLES)."""

    __table__: ClassVar[str]
    __key__: ClassVar[tuple[str, ...]] = ()
    __defaults__: ClassVar[dict[str, str]] = {}  # column -> SQL default expression


# --- Raw tables: one row per imp of each topic's messages (keyed rid, imp_id) ------------------


class BidRequestRow(Table, kw_only=True):
    __table__ = "bid_requests"
    __key__ = ("rid", "imp_id")
    rid: str
    imp_id: str
    request_id: str | None
    received_at: datetime
    media: str | None
    bidfloor: float | None
    bidfloorcur: str | None
    auction_type: Int32 | None
    site_domain: str | None
    app_bundle: str | None
    publisher_id: str | None
    device_type: Int32 | None
    country: str | None
    user_id: str | None


class BidResponseRow(Table, kw_only=True):
    __table__ = "bid_responses"
    __key__ = ("rid", "imp_id")
    rid: str
    imp_id: str
    request_id: str | None
    bid_at: datetime | None
    bid_price_usd: float | None
    bid_price: float | None
    bid_cur: str | None
    crid: str | None
    enriched: bool | None
    profile: str | None
    segment: str | None
    interest_score: float | None
    nobid_reason: str | None


class AuctionOutcomeRow(Table, kw_only=True):
    __table__ = "auction_outcomes"
    __key__ = ("rid", "imp_id")
    rid: str
    imp_id: str
    request_id: str | None
    outcome: str
    media: str | None
    segment: str | None
    enriched: bool | None
    auction_type: Int32 | None
    floor_usd: float | None
    bid_price_usd: float | None
    clearing_price_usd: float | None
    competitor_price_usd: float | None
    loss_reason: Int32 | None
    nobid_reason: str | None
    strategy: str | None
    received_at: datetime | None
    bid_at: datetime | None
    decided_at: datetime


# --- Bookkeeping of the exactly-once ingest ----------------------------------------------------


class IngestOffset(Table, kw_only=True):
    __table__ = "ingest_offsets"
    __key__ = ("topic", "partition")
    __defaults__ = {"updated_at": "now()"}
    topic: str
    partition: Int32
    next_offset: int
    updated_at: datetime


class IngestReject(Table, kw_only=True):
    """A message the ingest could not turn into rows (same transaction as rows, offsets)."""

    __table__ = "ingest_rejects"
    __key__ = ("topic", "partition", "offset")
    __defaults__ = {"rejected_at": "now()"}
    topic: str
    partition: Int32
    offset: int
    reason: str
    rejected_at: datetime


class ServingChange(Table, kw_only=True):
    """A rid range whose ``outcomes`` rows an ingest batch changed, written in the batch's
    transaction. The serving snapshot's publish re-copies the rows from the lowest such
    rid on and then deletes the ranges it applied (serving/snapshot.py)."""

    __table__ = "serving_changes"
    __defaults__ = {"changed_at": "now()"}
    lo_rid: str
    hi_rid: str
    changed_at: datetime


# --- What analysts and the API read --------------------------------------------------------------


class OutcomeRow(Table, kw_only=True):
    """``outcomes``: one row per request × imp with its request context, bid and outcome."""

    __table__ = "outcomes"
    __key__ = ("rid", "imp_id")
    rid: str
    imp_id: str
    request_id: str | None
    day: date | None
    received_at: datetime | None
    bid_at: datetime | None
    decided_at: datetime | None
    site_domain: str | None
    app_bundle: str | None
    domain: str | None
    publisher_id: str | None
    device_type: Int32 | None
    country: str | None
    media: str | None
    floor_usd: float | None
    bidfloor: float | None
    bidfloorcur: str | None
    auction_type: Int32 | None
    bid_price_usd: float | None
    enriched: bool | None
    segment: str | None
    profile: str | None
    crid: str | None
    outcome: str | None
    clearing_price_usd: float | None
    loss_reason: Int32 | None
    nobid_reason: str | None
    competitor_price_usd: float | None


class DailyStatsRow(Table, kw_only=True):
    """``daily_stats``: counts and sums per day, hour, domain, segment and media; rates are
    computed from the summed counts (DESIGN.md KPIs)."""

    __table__ = "daily_stats"
    __key__ = ("day", "hour", "domain", "segment", "media")
    day: date
    hour: Int32
    domain: str
    segment: str
    media: str
    requests: int
    bids: int
    wins: int
    floor_passes: int
    bid_sum_usd: float
    clearing_sum_usd: float
    won_bid_sum_usd: float
    spend_usd: float
    bid_rate: float | None
    win_rate: float | None
    ecpm_usd: float | None
    avg_clearing_usd: float | None
    shading_ratio: float | None
    floor_pass_rate: float | None


class UserProfileRow(Table, kw_only=True):
    __table__ = "user_profiles"
    __key__ = ("user_id",)
    user_id: str
    locale: str | None
    country: str | None
    age_band: str | None
    gender: str | None
    income_band: str | None
    top_interest: str | None
    top_score: float | None
    interests: list[str] | None
    scores: list[float] | None


TABLES: dict[str, type[Table]] = {t.__table__: t for t in (
    BidRequestRow, BidResponseRow, AuctionOutcomeRow, IngestOffset, IngestReject, ServingChange,
    OutcomeRow, DailyStatsRow, UserProfileRow)}
RAW = {t.__table__: t for t in (BidRequestRow, BidResponseRow, AuctionOutcomeRow)}

_SQL = {
    "duckdb": {str: "VARCHAR", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN",
               datetime: "TIMESTAMPTZ", date: "DATE"},
    "postgres": {str: "TEXT", int: "BIGINT", float: "DOUBLE PRECISION", bool: "BOOLEAN",
                 datetime: "TIMESTAMPTZ", date: "DATE"},
}
_QUOTE = {"partition", "offset"}  # reserved words in one dialect or the other


def _sql_type(tp: Any, dialect: str) -> tuple[str, bool]:
    """(SQL type, nullable) of one annotation."""
    nullable = False
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        nullable, tp = True, args[0]
    if get_origin(tp) is Annotated:
        base, *metas = get_args(tp)
        for meta in metas:
            if isinstance(meta, Meta) and meta.extra and "sql" in meta.extra:
                return meta.extra["sql"], nullable
        tp = base
    if get_origin(tp) is list:
        inner, _ = _sql_type(get_args(tp)[0], dialect)
        return f"{inner}[]", nullable
    return _SQL[dialect][tp], nullable


def column(name: str) -> str:
    return f'"{name}"' if name in _QUOTE else name


def columns(table: type[Table], dialect: str = "duckdb") -> list[tuple[str, str, bool]]:
    """(name, SQL type, nullable) of every column, in order."""
    return [(f.name, *_sql_type(f.type, dialect)) for f in msgspec.structs.fields(table)]


def column_names(table: type[Table]) -> list[str]:
    return [f.name for f in msgspec.structs.fields(table)]


def ddl(table: type[Table], dialect: str = "duckdb", *, replace: bool = False,
        name: str | None = None, key: bool = True, temp: bool = False) -> str:
    """``CREATE TABLE`` for ``table`` (``IF NOT EXISTS`` unless ``replace``; ``temp``: a
    temporary table)."""
    defs = []
    for col, sql, nullable in columns(table, dialect):
        default = table.__defaults__.get(col)
        defs.append(f"{column(col)} {sql}{'' if nullable else ' NOT NULL'}"
                    f"{f' DEFAULT {default}' if default else ''}")
    if key and table.__key__:
        defs.append(f"PRIMARY KEY ({', '.join(column(c) for c in table.__key__)})")
    kind = "TEMP TABLE" if temp else "TABLE"
    head = f"CREATE OR REPLACE {kind}" if replace else f"CREATE {kind} IF NOT EXISTS"
    body = ",\n    ".join(defs)
    return f"{head} {name or table.__table__} (\n    {body})"
