"""Table definitions. Every write is idempotent: a row written twice is one row (by key, or
by the ingest's explicit dedup for the keyless raw and outcomes tables)."""

from __future__ import annotations

from helios_pipeline.warehouse import tables

# Raw tables, one row per imp (tables.py defines them). No primary key: an ART index over
# millions of random-looking keys made every insert and checkpoint cost grow with the history
# (issue #6). The ingest keeps (rid, imp_id) unique itself (ingest.insert_new): rids sort by
# time (contracts/messages.py), so a batch's keys are checked against the rows in its rid
# range only, which DuckDB finds by the row groups' min/max rid without reading the rest.
RAW_TABLES = {name: tables.ddl(row, key=False) for name, row in tables.RAW.items()}

OFFSETS = tables.ddl(tables.IngestOffset)
# messages the ingest could not turn into rows (same transaction as rows and offsets)
REJECTS = tables.ddl(tables.IngestReject)


def rid_index(table: str, dialect: str) -> str | None:
    """The index of a table keyed (rid, imp_id) that has no primary key (see RAW_TABLES).
    DuckDB needs none: its row groups' min/max rid prune the ingest's rid-range lookups.
    PostgreSQL: a BRIN index on rid, the same idea (min/max per range of blocks; rows arrive
    in rid order), nearly free to maintain; a B-tree primary key cost the ingest about 40 %
    of its throughput (measured: 25 k → 35 k rows/s on a busy 2-core machine)."""
    if dialect != "postgres":
        return None
    return (f"CREATE INDEX IF NOT EXISTS {table}_rid_brin ON {table} USING brin (rid) "
            "WITH (autosummarize = on)")


# ``outcomes``: one row per auction_outcomes row (the driving table) with its request and
# response context. Kept incrementally by the ingest (warehouse/ingest.py), in the same
# transaction as the raw rows and offsets; OUTCOMES_SELECT is the one definition of a row,
# used both for that and for a full rebuild.
OUTCOMES_COLUMNS = (
    ("rid", "VARCHAR NOT NULL"), ("imp_id", "VARCHAR NOT NULL"), ("request_id", "VARCHAR"),
    ("day", "DATE"), ("received_at", "TIMESTAMPTZ"), ("bid_at", "TIMESTAMPTZ"),
    ("decided_at", "TIMESTAMPTZ"), ("site_domain", "VARCHAR"), ("app_bundle", "VARCHAR"),
    ("domain", "VARCHAR"), ("publisher_id", "VARCHAR"), ("device_type", "INTEGER"),
    ("country", "VARCHAR"), ("media", "VARCHAR"), ("floor_usd", "DOUBLE"),
    ("bidfloor", "DOUBLE"), ("bidfloorcur", "VARCHAR"), ("auction_type", "INTEGER"),
    ("bid_price_usd", "DOUBLE"), ("enriched", "BOOLEAN"), ("segment", "VARCHAR"),
    ("profile", "VARCHAR"), ("crid", "VARCHAR"), ("outcome", "VARCHAR"),
    ("clearing_price_usd", "DOUBLE"), ("loss_reason", "INTEGER"), ("nobid_reason", "VARCHAR"),
    ("competitor_price_usd", "DOUBLE"),
)
# no primary key either (see RAW_TABLES): the ingest replaces a key's row (delete in the
# batch's rid range, insert), so (rid, imp_id) stays unique — asset check outcomes_unique_keys
OUTCOMES = tables.ddl(tables.OutcomeRow, key=False)
OUTCOMES_REPLACE = tables.ddl(tables.OutcomeRow, key=False, replace=True)
assert [(c, t + ("" if n else " NOT NULL")) for c, t, n in tables.columns(tables.OutcomeRow)] \
    == list(OUTCOMES_COLUMNS)

# Raw rows of the keys not yet *settled* (a settled key has its request, response and
# outcome rows all ingested): the ingest joins a batch against these small tables instead of
# the whole history. Same columns as the raw tables, no key (rows only enter once).
PENDING = {t: f"pending_{t}" for t in RAW_TABLES}


def outcomes_select(outcomes: str = "auction_outcomes", requests: str = "bid_requests",
                    responses: str = "bid_responses", keys: str | None = None) -> str:
    """The ``outcomes`` rows, from the given raw relations; only the (rid, imp_id) pairs of
    relation ``keys`` when given. auction_outcomes drives: no outcome, no row."""
    o = outcomes if keys is None else (
        f"(SELECT * FROM {outcomes} x WHERE EXISTS (SELECT 1 FROM {keys} k "
        "WHERE k.rid = x.rid AND k.imp_id = x.imp_id))")
    return f"""
    SELECT
        o.rid, o.imp_id, coalesce(o.request_id, r.request_id) AS request_id,
        CAST(o.received_at AT TIME ZONE 'UTC' AS DATE) AS day,
        o.received_at, o.bid_at, o.decided_at,
        r.site_domain, r.app_bundle, coalesce(r.site_domain, r.app_bundle, 'unknown') AS domain,
        r.publisher_id, r.device_type, r.country, coalesce(o.media, r.media) AS media,
        o.floor_usd, r.bidfloor, r.bidfloorcur, o.auction_type,
        b.bid_price_usd, b.enriched, o.segment, b.profile, b.crid,
        o.outcome, o.clearing_price_usd, o.loss_reason, o.nobid_reason, o.competitor_price_usd
    FROM {o} o
    LEFT JOIN {requests} r USING (rid, imp_id)
    LEFT JOIN {responses} b USING (rid, imp_id)"""


def outcomes_fresh(keys: str) -> str:
    """The current ``outcomes`` rows of the pairs in ``keys``, from the pending rows (all raw
    rows of a key are there until it settles, so this equals the full select)."""
    return outcomes_select(PENDING["auction_outcomes"], PENDING["bid_requests"],
                           PENDING["bid_responses"], keys)


def settled(keys: str, tables: dict[str, str]) -> str:
    """The pairs of ``keys`` that have a row in each of ``tables`` (raw name → relation):
    request, response and outcome all ingested, so their outcomes row is final."""
    exists = " AND ".join(f"EXISTS (SELECT 1 FROM {rel} t{i} WHERE t{i}.rid = k.rid "
                          f"AND t{i}.imp_id = k.imp_id)" for i, rel in enumerate(tables.values()))
    return f"SELECT k.rid, k.imp_id FROM {keys} k WHERE {exists}"

DAILY_STATS = tables.ddl(tables.DailyStatsRow)

# One day's rows, recomputed from `outcomes`: counts and sums, rates from summed counts.
DAILY_STATS_FOR_DAY = """
    INSERT INTO daily_stats
    SELECT day, hour, domain, segment, media, requests, bids, wins, floor_passes,
           bid_sum_usd, clearing_sum_usd, won_bid_sum_usd, clearing_sum_usd / 1000 AS spend_usd,
           CAST(bids AS DOUBLE PRECISION) / nullif(requests, 0) AS bid_rate,
           CAST(wins AS DOUBLE PRECISION) / nullif(bids, 0) AS win_rate,
           clearing_sum_usd / nullif(wins, 0) AS ecpm_usd,
           clearing_sum_usd / nullif(wins, 0) AS avg_clearing_usd,
           clearing_sum_usd / nullif(won_bid_sum_usd, 0) AS shading_ratio,
           CAST(floor_passes AS DOUBLE PRECISION) / nullif(bids, 0) AS floor_pass_rate
    FROM (
        SELECT day, CAST(extract(hour FROM received_at AT TIME ZONE 'UTC') AS INTEGER) AS hour,
               domain, coalesce(segment, 'unknown') AS segment,
               coalesce(media, 'unknown') AS media,
               count(*) AS requests,
               count(*) FILTER (WHERE outcome IN ('won', 'lost')) AS bids,
               count(*) FILTER (WHERE outcome = 'won') AS wins,
               count(*) FILTER (WHERE outcome IN ('won', 'lost')
                                AND bid_price_usd >= coalesce(floor_usd, 0)) AS floor_passes,
               coalesce(sum(bid_price_usd) FILTER (WHERE outcome IN ('won', 'lost')), 0)
                   AS bid_sum_usd,
               coalesce(sum(clearing_price_usd) FILTER (WHERE outcome = 'won'), 0)
                   AS clearing_sum_usd,
               coalesce(sum(bid_price_usd) FILTER (WHERE outcome = 'won'), 0) AS won_bid_sum_usd
        FROM outcomes WHERE day = ?
        GROUP BY 1, 2, 3, 4, 5) per_group"""
