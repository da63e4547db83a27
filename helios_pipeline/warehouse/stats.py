"""``daily_stats``: one UTC day's counts and sums recomputed from ``outcomes``.

Plain warehouse code on the backend-neutral layer (backend.py), so the ``daily_stats``
asset does the same on DuckDB and PostgreSQL: the day is replaced in one transaction
(idempotent; readers see the old day or the new one).
"""

from __future__ import annotations

import duckdb

from helios_pipeline.warehouse import schema, tables
from helios_pipeline.warehouse.backend import Warehouse, as_warehouse


def refresh_daily_stats(con: duckdb.DuckDBPyConnection | Warehouse, day: str) -> dict:
    """Replace ``day``'s rows of ``daily_stats``; returns its row count, requests, bids,
    wins and spend."""
    db = as_warehouse(con)
    db.begin()
    try:
        db.lock_writers()
        db.ddl(tables.DailyStatsRow)
        db.execute("DELETE FROM daily_stats WHERE day = CAST(? AS DATE)", [day])
        db.execute(schema.DAILY_STATS_FOR_DAY.replace("day = ?", "day = CAST(? AS DATE)"),
                   [day])
        db.commit()
    except BaseException:
        db.rollback()
        raise
    rows, req, bids, wins, spend = db.execute(
        "SELECT count(*), coalesce(sum(requests), 0), coalesce(sum(bids), 0), "
        "coalesce(sum(wins), 0), coalesce(sum(spend_usd), 0) FROM daily_stats "
        "WHERE day = CAST(? AS DATE)", [day])[0]
    return {"rows": int(rows), "requests": int(req), "bids": int(bids), "wins": int(wins),
            "spend_usd": float(spend)}
