"""``analyst_exports``: Parquet per day (hive-partitioned) and a read-only DuckDB file
(the writing is in ``helios_pipeline/warehouse/exports.py``).

Analysts never open the warehouse a run is writing: they open ``helios.duckdb`` in the
export directory, whose views read the Parquet files. It is written to a temporary name
and renamed into place, so an analyst opens either the old file or the new one, whole.
"""

from pathlib import Path

import dagster as dg

from assets.warehouse import daily_stats, outcomes
from helios_pipeline.resources import DuckDBWarehouse, PathsResource
from helios_pipeline.warehouse.exports import export


class ExportConfig(dg.Config):
    out_dir: str | None = None  # default: the `paths` resource


@dg.asset(
    group_name="exports",
    kinds={"parquet", "duckdb"},
    deps=[outcomes, daily_stats],
    description="Parquet per day of outcomes and daily_stats + a read-only DuckDB file",
)
def analyst_exports(config: ExportConfig, warehouse: DuckDBWarehouse,
                    paths: PathsResource) -> dg.MaterializeResult:
    out = Path(config.out_dir or paths.exports_dir)
    with warehouse.connect(read_only=True) as con:
        counts = export(con, out)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(out.resolve())),
            "duckdb_file": dg.MetadataValue.path(str((out / "helios.duckdb").resolve())),
            **counts,
        }
    )
