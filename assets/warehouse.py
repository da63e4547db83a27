"""``outcomes`` (the table analysts use) and ``daily_stats`` (daily partitions, UTC)."""


import dagster as dg

from assets.columns import freshness, schema_metadata
from helios_pipeline.automation import STATS_CRON, daily, follow_upstream
from helios_pipeline.resources import DuckDBWarehouse
from helios_pipeline.warehouse import schema, tables
from helios_pipeline.warehouse.ingest import ensure_schema


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
    with warehouse.connect() as con:
        ensure_schema(con)  # raw, offsets, outcomes + pending tables; no-op when current
        n, won, newest, last_rid = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'won'), max(decided_at), "
            "max(rid) FROM outcomes").fetchall()[0]
        waiting = con.execute(
            f"SELECT count(*) FROM {schema.PENDING['auction_outcomes']}").fetchall()[0][0]
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
    with warehouse.connect() as con:
        con.execute(schema.DAILY_STATS).fetchall()
        con.execute("BEGIN TRANSACTION").fetchall()  # replace the partition atomically: idempotent
        con.execute("DELETE FROM daily_stats WHERE day = ?", [day]).fetchall()
        con.execute(schema.DAILY_STATS_FOR_DAY, [day]).fetchall()
        con.execute("COMMIT").fetchall()
        rows, req, bids, wins, spend = con.execute(
            "SELECT count(*), coalesce(sum(requests), 0), coalesce(sum(bids), 0), "
            "coalesce(sum(wins), 0), coalesce(sum(spend_usd), 0) FROM daily_stats WHERE day = ?",
            [day]).fetchall()[0]
        newest = con.execute("SELECT max(decided_at) FROM outcomes WHERE day = ?",
                             [day]).fetchall()[0][0]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": rows,
        "requests": req,
        "bids": bids,
        "wins": wins,
        "win_rate": round(wins / bids, 4) if bids else 0.0,
        "spend_usd": round(spend, 4),
        **freshness(newest),  # the newest outcome the partition counts
    })
