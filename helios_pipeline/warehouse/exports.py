"""Analyst exports: Parquet per day (hive-partitioned) and a read-only DuckDB file.

Analysts never open the warehouse a run is writing: they open ``helios.duckdb`` in the
export directory, whose views read the Parquet files. It is written to a temporary name
and renamed into place, so an analyst opens either the old file or the new one, whole.
Plain warehouse code: the ``analyst_exports`` asset and ``helios export`` both call it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import duckdb


def export(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    day_from: str | None = None,
    day_to: str | None = None,
    on_day: Callable[[str], None] | None = None,
) -> dict:
    """Write the days in range (all by default); returns counts. Used by the asset and the CLI."""
    out_dir.mkdir(parents=True, exist_ok=True)
    where = (
        "WHERE day BETWEEN coalesce(?::DATE, DATE '0001-01-01') "
        "AND coalesce(?::DATE, DATE '9999-12-31')"
    )
    days = [
        str(d)
        for (d,) in con.execute(
            f"SELECT DISTINCT day FROM outcomes {where} ORDER BY day", [day_from, day_to]
        ).fetchall()
    ]
    has_stats = bool(
        con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'daily_stats'"
        ).fetchall()[0][0]
    )
    counts = {"days": len(days), "outcomes": 0, "daily_stats": 0}
    for done, day in enumerate(days, start=1):
        for table in ("outcomes", "daily_stats") if has_stats else ("outcomes",):
            target = out_dir / table / f"day={day}"
            target.mkdir(parents=True, exist_ok=True)
            n = con.execute(f"SELECT count(*) FROM {table} WHERE day = ?", [day]).fetchall()[0][0]
            con.execute(
                f"COPY (SELECT * EXCLUDE (day) FROM {table} WHERE day = '{day}') "
                f"TO '{target / 'data.parquet'}' (FORMAT parquet, COMPRESSION zstd)"
            ).fetchall()
            counts[table] += n
        if on_day:
            on_day(day, done, len(days))
    tmp = out_dir / "helios.duckdb.tmp"
    tmp.unlink(missing_ok=True)
    views = duckdb.connect(str(tmp))
    for table in ("outcomes", "daily_stats"):
        if (out_dir / table).exists():
            files = f"{(out_dir / table).resolve()}/day=*/data.parquet"
            views.execute(f"CREATE VIEW {table} AS SELECT * FROM "
                          f"read_parquet('{files}', hive_partitioning = true)").fetchall()
    views.close()
    os.replace(tmp, out_dir / "helios.duckdb")
    return counts
