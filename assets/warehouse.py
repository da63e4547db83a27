"""``outcomes`` (the table analysts use) and ``daily_stats`` (daily partitions, UTC)."""


import dagster as dg

from assets.columns import freshness, schema_metadata
from helios_pipeline.automation import STATS_CRON, daily, follow_upstream
from helios_pipeline.resources import DuckDBWarehouse
from helios_pipeline.warehouse import schema, tables
from helios_pipeline.warehouse.ingest import ensure_schema
from helios_pipeline.warehouse.stats import refresh_daily_stats


@dg.asset(
    group_name="warehouse",
    kinds={"duckdb"},
    pool="duckdb_writer",
    deps=["bid_requests", "bid_responses", "auction_outcomes"],
    description="One row per request × imp: request context, bid and outcome",
    metadata=schema_metadata(tables.OutcomeRow),
)
def outcomes(warehouse: DuckDBWarehouse) -> dg.MaterializeResult:
    """Kept up to date by the raw ingests themselves (each batch upserts the outcomes rows
    of the keys it touched, in the same transaction as its rows and offsets), so this asset
    no longer rebuilds: it makes sure the table exists — rebuilding it once from the raw
    tables if it comes from an older version without a primary key — and reports cheap
    metadata. It stays in the graph so lineage (raw → outcomes → daily_stats), its checks
    and the ``ingest_outcomes`` job keep their meaning."""
    with warehouse.open() as db:
        ensure_schema(db)  # raw, offsets, outcomes + pending tables; no-op when current
        n, won, newest, last_rid = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'won'), max(decided_at), "
            "max(rid) FROM outcomes")[0]
        waiting = db.scalar(f"SELECT count(*) FROM {schema.PENDING['auction_outcomes']}")
    # the data version says whether anything changed: a run that added nothing leaves
    # daily_stats, the exports and the snapshot in sync instead of marking them unsynced
    return dg.MaterializeResult(metadata={
        "dagster/row_count": n, "wins": won,
        "awaiting_request_or_response": waiting, **freshness(newest)},
        data_version=dg.DataVersion(f"{n}:{last_rid or ''}"))


@dg.asset(
    group_name="warehouse",
    kinds={"duckdb"},
    pool="duckdb_writer",
    deps=[outcomes],
    partitions_def=daily,
    automation_condition=follow_upstream(STATS_CRON),  # today's partition follows ingest
    description="Per day, hour, domain, segment and media: counts, sums and KPIs",
    metadata=schema_metadata(tables.DailyStatsRow),
)
def daily_stats(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse
                ) -> dg.MaterializeResult:
    day = context.partition_key
    with warehouse.open() as db:  # the partition replaced atomically: idempotent
        got = refresh_daily_stats(db, day)
        newest = db.scalar("SELECT max(decided_at) FROM outcomes WHERE day = ?", [day])
    rows, req, bids, wins, spend = (got[k] for k in ("rows", "requests", "bids", "wins",
                                                     "spend_usd"))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": rows,
        "requests": req,
        "bids": bids,
        "wins": wins,
        "win_rate": round(wins / bids, 4) if bids else 0.0,
        "spend_usd": round(spend, 4),
        **freshness(newest),  # the newest outcome the partition counts
    })
