"""``analyst_exports``: one Parquet file per table and day and a read-only DuckDB file
(the writing is in ``helios_pipeline/warehouse/exports.py``).

Analysts never open the warehouse a run is writing: they open ``helios.duckdb`` in the
export directory, whose views read the Parquet files. Every file is written to a temporary
name and renamed into place, so an analyst reads either the old file or the new one, whole.

Kept fresh by the ``ingest_outcomes`` job (helios_pipeline/jobs.py), which runs this asset
with ``only_changed``: it rewrites only the days whose rows differ from the warehouse
(typically today), at most every ``HELIOS_EXPORT_REFRESH_S`` seconds, and materialises
nothing when the export is current: an idle warehouse gets no new export.
"""

import time
from pathlib import Path

import dagster as dg

from assets.warehouse import daily_stats, outcomes
from helios_pipeline.resources import DuckDBWarehouse, PathsResource
from helios_pipeline.warehouse.exports import export, stale_days


class ExportConfig(dg.Config):
    out_dir: str | None = None  # default: the `paths` resource
    days: list[str] | None = None  # YYYY-MM-DD; None: every day
    only_changed: bool = False  # only the days that differ, at most every refresh_s
    refresh_s: float | None = None  # default: HELIOS_EXPORT_REFRESH_S (300)


def refresh_interval(config: ExportConfig) -> float:
    if config.refresh_s is not None:
        return config.refresh_s
    from ingest_services.settings import Settings, load_settings

    try:
        return load_settings().export_refresh_s
    except Exception:  # a bad unrelated HELIOS_* variable must not stop the exports
        return Settings.model_fields["export_refresh_s"].default


@dg.asset(
    group_name="exports",
    kinds={"parquet", "duckdb"},
    deps=[outcomes, daily_stats],
    output_required=False,  # only_changed: no materialisation when nothing changed
    description="Parquet per table and day of outcomes and daily_stats + a read-only "
                "DuckDB file; refreshed after ingest (changed days only)",
)
def analyst_exports(context: dg.AssetExecutionContext, config: ExportConfig,
                    warehouse: DuckDBWarehouse, paths: PathsResource):
    out = Path(config.out_dir or paths.exports_dir)
    views = out / "helios.duckdb"
    if config.only_changed and views.exists():
        age = time.time() - views.stat().st_mtime
        if age < refresh_interval(config):
            context.log.info(f"exports refreshed {age:.0f}s ago: skipped")
            return
    with warehouse.open(read_only=True) as con:  # DuckDB or PostgreSQL
        days = config.days
        if config.only_changed:
            days = [d for d in stale_days(con, out) if config.days is None or d in config.days]
            if not days and views.exists():
                context.log.info("exports match the warehouse: nothing to do")
                return
        counts = export(con, out, days=days)
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out.resolve())),
            "duckdb_file": dg.MetadataValue.path(str(views.resolve())),
            "days_written": ", ".join(days) if days is not None else "all",
            **counts,
        }
    )
