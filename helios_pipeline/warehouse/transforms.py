"""Messages → rows, in SQL: DuckDB parses the JSON (vectorised, in C++) instead of Python.

Each table has a PARSE query over the registered Arrow batch ``ingest_batch``
(``partition``, ``offset``, ``value`` as bytes) producing a ``parsed`` relation with
``ok`` and ``reason``, and a ROWS query turning the ok rows into table rows. Our own
messages (bid responses, outcomes) are parsed into typed structs derived from their
msgspec contracts; OpenRTB requests keep JSON-typed leaves, so a request the gateway
accepted can never fail a cast here.
"""

from __future__ import annotations

from ingest_services.contracts import messages as m

_DECODE = """
    SELECT "partition", "offset", s, CASE WHEN json_valid(s) THEN try(from_json(s, '{shape}'))
                                     END AS j
    FROM (SELECT "partition", "offset", try(decode(value)) AS s FROM ingest_batch)"""

_REASON = """
    CASE WHEN s IS NULL THEN 'not UTF-8 text'
         WHEN NOT json_valid(s) THEN 'invalid JSON'
         WHEN j IS NULL THEN 'does not match the message contract'
         ELSE 'missing required field ({fields})' END"""


def _parse(shape: str, required: list[str]) -> str:
    ok = " AND ".join(["j IS NOT NULL"] + [f"j.{f} IS NOT NULL" for f in required])
    reason = _REASON.format(fields=", ".join(required))
    return (f"CREATE OR REPLACE TEMP TABLE parsed AS SELECT *, ({ok}) AS ok, "
            f"CASE WHEN {ok} THEN NULL ELSE {reason} END AS reason "
            f"FROM ({_DECODE.format(shape=shape)})")


def _ts(expr: str) -> str:
    """Epoch milliseconds → TIMESTAMPTZ, independent of the session time zone."""
    return f"to_timestamp({expr} / 1000.0)"


# The types DuckDB parses each message into come from the message contracts themselves
# (ingest_services/contracts/messages.py); the request stays JSON (the sender's bytes).
OUTCOME_SHAPE = m.duckdb_type(m.AuctionOutcome)
RESPONSE_SHAPE = m.duckdb_type(m.BidResponse)
REQUEST_SHAPE = m.duckdb_type(m.RequestEnvelope, frozenset({"request"}))

PARSE = {
    "auction_outcomes": _parse(OUTCOME_SHAPE, ["rid", "imp_id", "outcome", "decided_at"]),
    "bid_responses": _parse(RESPONSE_SHAPE, ["rid", "imps"]),
    "bid_requests": _parse(REQUEST_SHAPE, ["rid", "received_at", "request"]),
}

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
