"""``analyst_exports``: one Parquet file per table and day and a read-only DuckDB file
(the writing is in ``helios_pipeline/warehouse/exports.py``).

Analysts never open the warehouse a run is writing: they open ``helios.duckdb`` in the
export directory, whose views read the Parquet files. Every file is written to a temporary
name and renamed into place, so an analyst reads either the old file or the new one, whole.

Kept fresh by Dagster's declarative automation (helios_pipeline/automation.py): after the
warehouse changed, at most once per ``HELIOS_EXPORT_REFRESH_S`` (a cron of ``*/5`` by
default). A run rewrites only the days whose rows differ from the warehouse (typically
today) and materialises nothing when the export is current; an idle warehouse starts no run at all.
"""

from pathlib import Path

import dagster as dg
import duckdb

from assets.columns import freshness
from assets.warehouse import daily_stats, outcomes
from helios_pipeline.automation import EXPORTS_CRON, follow_upstream
from helios_pipeline.resources import DuckDBWarehouse, PathsResource
from helios_pipeline.warehouse.exports import export, stale_days


class ExportConfig(dg.Config):
    out_dir: str | None = None  # default: the `paths` resource
    days: list[str] | None = None  # YYYY-MM-DD; None: every day
    only_changed: bool = True  # only the days that differ from the warehouse (False: rewrite)


@dg.asset(
    group_name="exports",
    kinds={"parquet", "duckdb"},
    deps=[outcomes, daily_stats],
    output_required=False,  # only_changed: no materialisation when nothing changed
    automation_condition=follow_upstream(EXPORTS_CRON),
    description="Parquet per table and day of outcomes and daily_stats + a read-only "
                "DuckDB file; follows the warehouse (changed days only, at most every "
                "HELIOS_EXPORT_REFRESH_S)",
)
def analyst_exports(context: dg.AssetExecutionContext, config: ExportConfig,
                    warehouse: DuckDBWarehouse, paths: PathsResource):
    out = Path(config.out_dir or paths.exports_dir)
    views = out / "helios.duckdb"
    with warehouse.open(read_only=True) as con:  # DuckDB or PostgreSQL
        days = config.days
        if config.only_changed:
            days = [d for d in stale_days(con, out) if config.days is None or d in config.days]
            if not days and views.exists():
                context.log.info("exports match the warehouse: nothing to do")
                return
        counts = export(con, out, days=days)
    total, newest = duckdb.sql(  # what an analyst opening the export now gets
        f"SELECT count(*), max(decided_at) FROM read_parquet('{out / 'outcomes'}/*.parquet')"
    ).fetchall()[0]
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out.resolve())),
            "duckdb_file": dg.MetadataValue.path(str(views.resolve())),
            "days_written": ", ".join(days) if days is not None else "all",
            "dagster/row_count": total,  # outcomes rows in the whole export
            **counts,  # rows written by this run
            **freshness(newest),
        }
    )
