"""What readers get: ``serving_snapshot`` (the analytics API's read-only snapshot, published
after every ingest) and ``serving_daily_stats`` (daily_stats in PostgreSQL).

DuckDB serves one writer and readers of exports; the analytics API and dashboards read
concurrently, so the daily table is mirrored into PostgreSQL. Each partition is replaced
in one PostgreSQL transaction: readers see the old day or the new day, never half.
"""

import tempfile
from pathlib import Path

import dagster as dg

from assets.columns import freshness
from assets.warehouse import daily_stats, outcomes
from helios_pipeline.automation import STATS_CRON, daily, follow_upstream
from helios_pipeline.resources import DuckDBWarehouse, PathsResource, PostgresResource
from helios_pipeline.serving.snapshot import publish
from helios_pipeline.warehouse import tables

DDL = tables.ddl(tables.DailyStatsRow, "postgres")  # the same row as the DuckDB table


@dg.asset(
    group_name="serving",
    kinds={"postgres"},
    deps=[daily_stats],
    partitions_def=daily,
    automation_condition=follow_upstream(STATS_CRON),  # in the same run as daily_stats
    description="daily_stats mirrored into PostgreSQL for concurrent readers",
)
def serving_daily_stats(context: dg.AssetExecutionContext, warehouse: DuckDBWarehouse,
                        postgres: PostgresResource) -> dg.MaterializeResult:
    day = context.partition_key
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "day.csv"
        with warehouse.reader({"daily_stats": f"day = '{day}'"}) as con:
            con.execute(f"COPY (SELECT * FROM daily_stats WHERE day = '{day}') "
                        f"TO '{csv}' (FORMAT csv, HEADER false)").fetchall()
        with postgres.connect() as pg, pg.cursor() as cur, csv.open() as rows:
            cur.execute(DDL)
            cur.execute("DELETE FROM daily_stats WHERE day = %s", [day])
            cur.copy_expert("COPY daily_stats FROM STDIN WITH (FORMAT csv)", rows)
            cur.execute("SELECT count(*), coalesce(sum(requests), 0) FROM daily_stats "
                        "WHERE day = %s", [day])
            n, requests = cur.fetchone()
            pg.commit()
    with warehouse.open(read_only=True) as db:  # the newest outcome the mirrored day counts
        newest = db.scalar("SELECT max(decided_at) FROM outcomes WHERE day = ?", [day])
    return dg.MaterializeResult(metadata={"dagster/row_count": n, "requests": int(requests),
                                          **freshness(newest)})


@dg.asset(
    group_name="serving",
    kinds={"duckdb"},
    pool="duckdb_writer",  # reads the warehouse: wait for the writer, never block it
    deps=[outcomes],
    description="The analytics API's read-only snapshot of outcomes (sorted by rid, with "
                "pre-aggregated counts and the stories files keyed by rid), swapped in "
                "atomically after every ingest",
)
def serving_snapshot(warehouse: DuckDBWarehouse, paths: PathsResource) -> dg.MaterializeResult:
    with warehouse.open() as db:
        pub = publish(db, Path(paths.serving))
    return dg.MaterializeResult(metadata={
        "dagster/row_count": pub.rows,
        "as_of": pub.as_of or "no data",
        "publish_seconds": round(pub.seconds, 3),
        "publish_mode": pub.mode,  # full | patched | unchanged (serving/snapshot.py)
        "tail_rows": pub.tail_rows,
        "path": dg.MetadataValue.path(str(pub.path)),
        "stories_files": ", ".join(pub.stories),  # SQLite, beside it (serving/stories.py)
    }, data_version=dg.DataVersion(f"{pub.rows}:{pub.as_of or ''}"))
