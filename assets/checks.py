"""Asset checks guarding keys, prices, rates, reconciliation and the accounting invariant."""


import dagster as dg

from assets.warehouse import daily_stats, outcomes
from helios_pipeline.resources import DuckDBWarehouse


def _count(warehouse: DuckDBWarehouse, sql: str, params: list | None = None) -> int:
    with warehouse.open(read_only=True) as db:  # SQL both backends run
        return int(db.scalar(sql, params or []))


@dg.asset_check(asset=outcomes, description="(rid, imp_id) is unique: nothing doubled")
def outcomes_unique_keys(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    dups = _count(warehouse, "SELECT count(*) FROM (SELECT rid, imp_id FROM outcomes "
                             "GROUP BY rid, imp_id HAVING count(*) > 1) d")
    return dg.AssetCheckResult(passed=dups == 0, metadata={"duplicated_keys": dups})


@dg.asset_check(asset=outcomes,
                description="Won imps clear at or above the floor and never above the bid "
                            "(first price: exactly the bid)")
def outcomes_prices_valid(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    bad = _count(warehouse, """SELECT count(*) FROM outcomes WHERE outcome = 'won' AND (
        clearing_price_usd IS NULL OR clearing_price_usd < coalesce(floor_usd, 0) - 1e-9
        OR clearing_price_usd > bid_price_usd + 1e-9
        OR (auction_type <> 2 AND abs(clearing_price_usd - bid_price_usd) > 1e-9))""")
    return dg.AssetCheckResult(passed=bad == 0, metadata={"bad_prices": bad})


@dg.asset_check(
    asset=outcomes, blocking=True,
    description="Accounting invariant: every accepted imp older than the grace period has "
                "exactly one outcome (blocking: downstream stats wait for it)",
)
def outcomes_account_for_every_imp(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    # imps still in flight (received in the last 60 s before the newest request) are excused
    missing = _count(warehouse, """
        SELECT count(*) FROM bid_requests r
        WHERE r.received_at < (SELECT max(received_at) FROM bid_requests) - INTERVAL '60 seconds'
          AND NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.rid = r.rid AND o.imp_id = r.imp_id)
    """)
    orphans = _count(warehouse, """SELECT count(*) FROM outcomes o WHERE NOT EXISTS (
        SELECT 1 FROM bid_requests r WHERE r.rid = o.rid AND r.imp_id = o.imp_id)""")
    return dg.AssetCheckResult(passed=missing == 0,
                               metadata={"missing": missing, "outcomes_without_request": orphans})


@dg.asset_check(asset=daily_stats, description="Every rate is within [0, 1]")
def daily_stats_rates_in_range(context: dg.AssetCheckExecutionContext,
                               warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    bad = _count(warehouse, """SELECT count(*) FROM daily_stats WHERE
        bid_rate NOT BETWEEN 0 AND 1 OR win_rate NOT BETWEEN 0 AND 1
        OR floor_pass_rate NOT BETWEEN 0 AND 1 OR shading_ratio NOT BETWEEN 0 AND 1""")
    return dg.AssetCheckResult(passed=bad == 0, metadata={"rows_out_of_range": bad})


@dg.asset_check(asset=daily_stats,
                description="Summed counts per day equal the counts in outcomes")
def daily_stats_reconcile(warehouse: DuckDBWarehouse) -> dg.AssetCheckResult:
    diff = _count(warehouse, """
        WITH s AS (SELECT day, sum(requests) req, sum(bids) bids, sum(wins) wins
                   FROM daily_stats GROUP BY day),
             o AS (SELECT day, count(*) req,
                          count(*) FILTER (WHERE outcome IN ('won','lost')) bids,
                          count(*) FILTER (WHERE outcome = 'won') wins
                   FROM outcomes WHERE day IN (SELECT day FROM s) GROUP BY day)
        SELECT count(*) FROM s FULL JOIN o USING (day)
        WHERE s.req IS DISTINCT FROM o.req OR s.bids IS DISTINCT FROM o.bids
           OR s.wins IS DISTINCT FROM o.wins""")
    return dg.AssetCheckResult(passed=diff == 0, metadata={"days_not_reconciled": diff})
