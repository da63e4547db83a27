"""Messages → rows, in SQL: DuckDB parses the JSON (vectorised, in C++) instead of Python.

Each table has a parse query over the registered Arrow batch ``ingest_batch``
(``partition``, ``offset``, ``value`` as bytes) whose rows are materialised as ``parsed``
(``partition``, ``offset``, ``j``, ``ok``, ``reason``), and a ROWS query turning the ok rows
into table rows. Our own messages (bid responses, outcomes) are parsed into typed structs
derived from their msgspec contracts; OpenRTB requests keep JSON-typed leaves, so a request
the gateway accepted can never fail a cast here.

Two parse queries per table, built from the same pieces, so they cannot disagree:

* ``PARSE_FAST`` decodes and parses every message without guards (no ``json_valid``, no
  ``try``): a batch whose bytes are all UTF-8 JSON — every batch Helios writes itself — is
  parsed in one vectorised pass. Invalid UTF-8 or JSON anywhere in the batch makes the
  statement fail as a whole;
* ``PARSE`` (the safe one) then parses that batch again with a guard per message (``try``,
  ``json_valid``), so each poison message gets its own row and reason.

Where the fast query succeeds, both give the same ``parsed`` rows: the guards only change
the result of a message on which the unguarded functions would have raised.
"""

from __future__ import annotations

import types
from typing import Annotated, Union, get_args, get_origin

from ingest_services.contracts import messages as m

_DECODE = """
    SELECT "partition", "offset", n, s,
           CASE WHEN n <= {max_bytes}{guard} THEN {parse} END AS j
    FROM (SELECT "partition", "offset", octet_length(value) AS n, {decode} AS s
          FROM ingest_batch)"""


def _decode(shape: str, safe: bool) -> str:
    """The decoded rows (``n`` bytes, ``s`` text, ``j`` typed struct): ``safe`` guards each
    message (a poison message gets NULLs), otherwise the first poison fails the statement."""
    parse = f"from_json(s, '{shape}')"
    return _DECODE.format(
        max_bytes=m.MAX_MESSAGE_BYTES, guard=" AND json_valid(s)" if safe else "",
        parse=f"try({parse})" if safe else parse,
        decode="try(decode(value))" if safe else "decode(value)")


def _checks(contract: type) -> list[tuple[str, str]]:
    """(condition, reason) pairs for what ``from_json`` does not check itself (issue #9's
    poison): the schema version, finite floats (DuckDB reads NaN and 1e999), integers in
    the contract's range (an integer beyond BIGINT silently becomes NULL)."""
    import msgspec

    out = [(f"j.v = {m.SCHEMA_VERSION}",
            "'unsupported schema version ' || coalesce(json_extract_string(s, '$.v'), 'null')")]
    for f in msgspec.structs.fields(contract):
        tp, metas = f.type, []
        while get_origin(tp) is Annotated:
            tp, *extra = get_args(tp)
            metas += [x for x in extra if isinstance(x, msgspec.Meta)]
        optional = get_origin(tp) in (Union, types.UnionType)
        if optional:
            tp = next(a for a in get_args(tp) if a is not type(None))
        while get_origin(tp) is Annotated:
            tp, *extra = get_args(tp)
            metas += [x for x in extra if isinstance(x, msgspec.Meta)]
        col, name = f"j.{f.encode_name}", f.encode_name
        if tp is float:
            out.append((f"{col} IS NULL OR isfinite({col})", f"'non-finite number in {name}'"))
        elif tp is int:
            bounds = [f"{col} >= {x.ge}" for x in metas if x.ge is not None]
            bounds += [f"{col} <= {x.le}" for x in metas if x.le is not None]
            in_range = " AND ".join(bounds) or "true"
            if optional:  # NULL is a valid value: only a present value is range-checked
                out.append((f"{col} IS NULL OR ({in_range})", f"'{name} out of range'"))
                continue
            # a contract field that is NULL after the cast: absent (tolerated, as before) or
            # beyond BIGINT (poison). Only such rows re-read the JSON, never a valid message.
            # j IS NULL first: CASE evaluates a branch only for its rows, so json_extract
            # never sees the invalid JSON of a row already rejected
            out.append((f"CASE WHEN j IS NULL THEN false "
                        f"WHEN {col} IS NULL THEN json_extract(s, '$.{name}') IS NULL "
                        f"OR json_type(s, '$.{name}') = 'NULL' ELSE {in_range} END",
                        f"'{name} out of range'"))
    return out


def _parse(shape: str, required: list[str], contract: type, safe: bool = True) -> str:
    """The ``parsed`` rows: every message with ``ok`` and, when not ok, the first reason."""
    must = " AND ".join(["j IS NOT NULL"] + [f"j.{f} IS NOT NULL" for f in required])
    checks = _checks(contract)
    ok = " AND ".join([f"coalesce({must}, false)"]
                      + [f"coalesce({c}, false)" for c, _ in checks])
    reason = (
        f"CASE WHEN n > {m.MAX_MESSAGE_BYTES} THEN 'record of ' || n || ' bytes is over "
        f"{m.MAX_MESSAGE_BYTES} bytes, the most a Helios producer writes' "
        "WHEN s IS NULL THEN 'not UTF-8 text' "
        "WHEN NOT json_valid(s) THEN 'invalid JSON' "
        "WHEN j IS NULL THEN 'does not match the message contract' "
        f"WHEN NOT coalesce({must}, false) THEN "
        f"'missing required field ({', '.join(required)})' "
        + " ".join(f"WHEN NOT coalesce({c}, false) THEN {r}" for c, r in checks)
        + " END")
    return (f'SELECT "partition", "offset", j, ok, '
            f"CASE WHEN ok THEN NULL ELSE {reason} END AS reason "
            f"FROM (SELECT *, ({ok}) AS ok FROM ({_decode(shape, safe)}))")


def _ts(expr: str) -> str:
    """Epoch milliseconds → TIMESTAMPTZ, independent of the session time zone."""
    return f"to_timestamp({expr} / 1000.0)"


# The types DuckDB parses each message into come from the message contracts themselves
# (ingest_services/contracts/messages.py); the request stays JSON (the sender's bytes).
OUTCOME_SHAPE = m.duckdb_type(m.AuctionOutcome)
RESPONSE_SHAPE = m.duckdb_type(m.BidResponse)
REQUEST_SHAPE = m.duckdb_type(m.RequestEnvelope, frozenset({"request"}))

_CONTRACTS = {  # table -> (shape, required fields, contract)
    "auction_outcomes": (OUTCOME_SHAPE, ["rid", "imp_id", "outcome", "decided_at"],
                         m.AuctionOutcome),
    "bid_responses": (RESPONSE_SHAPE, ["rid", "imps"], m.BidResponse),
    "bid_requests": (REQUEST_SHAPE, ["rid", "received_at", "request"], m.RequestEnvelope),
}
PARSE = {t: _parse(*c) for t, c in _CONTRACTS.items()}
PARSE_FAST = {t: _parse(*c, safe=False) for t, c in _CONTRACTS.items()}

ROWS = {
    "auction_outcomes": f"""
        SELECT j.rid, j.imp_id, j.request_id, j.outcome, j.media, j.segment,
               coalesce(j.enriched, false), j."at", j.floor_usd, j.bid_price_usd,
               j.clearing_price_usd, j.competitor_price_usd, j.loss_reason, j.nobid_reason,
               j.strategy, {_ts("j.received_at")}, {_ts("j.bid_at")}, {_ts("j.decided_at")}
        FROM parsed WHERE ok""",
    "bid_responses": f"""
        SELECT j.rid, imp.imp_id, j.request_id, {_ts("j.bid_at")}, imp.bid.price_usd,
               imp.bid.price, imp.bid.cur, imp.bid.crid, coalesce(j.enriched, false),
               j.profile, j.segment, j.interest_score, imp.nobid_reason
        FROM (SELECT j, unnest(j.imps) AS imp FROM parsed WHERE ok)""",
    # one row per imp; media precedence as the bidder prices it (video, audio, native, banner)
    "bid_requests": f"""
        WITH r AS (SELECT j.rid, j.received_at, j.request AS q,
                          coalesce(j.request->'site', j.request->'app', j.request->'dooh') AS owner
                   FROM parsed WHERE ok)
        SELECT rid, imp->>'id', q->>'id', {_ts("received_at")},
               CASE WHEN json_type(imp->'video') = 'OBJECT' THEN 'video'
                    WHEN json_type(imp->'audio') = 'OBJECT' THEN 'audio'
                    WHEN json_type(imp->'native') = 'OBJECT' THEN 'native'
                    ELSE 'banner' END,
               coalesce(TRY_CAST(imp->>'bidfloor' AS DOUBLE), 0.0),
               coalesce(imp->>'bidfloorcur', 'USD'),
               coalesce(TRY_CAST(q->>'at' AS INTEGER), 2),
               coalesce(q->'site'->>'domain', q->'dooh'->>'domain'), q->'app'->>'bundle',
               owner->'publisher'->>'id', TRY_CAST(q->'device'->>'devicetype' AS INTEGER),
               q->'device'->'geo'->>'country', q->'user'->>'id'
        FROM (SELECT *, unnest(json_extract(q, '$.imp[*]')) AS imp FROM r)""",
}
