"""Analyst exports: one Parquet file per table and day, and a read-only DuckDB file.

Layout (``out_dir`` can be copied or moved anywhere, nothing in it names its location)::

    helios.duckdb                 views outcomes and daily_stats over the files below
    outcomes/YYYY-MM-DD.parquet   one file per UTC day, ``day`` is a column inside it
    daily_stats/YYYY-MM-DD.parquet

``day`` is written inside each file (not as a hive ``day=`` directory), as a TIMESTAMP at
midnight, so ``pandas.read_parquet(out_dir / "outcomes")`` and DuckDB's ``.df()`` of the
views both give ``datetime64``; the views cast it back to DATE, the warehouse's type, and
keep the warehouse's column order. Counts are BIGINT in every file (int64 in pandas).

The views use paths relative to the export folder: DuckDB resolves them against the
working directory, or against ``SET file_search_path = '<export folder>'``.

Analysts never open the warehouse a run is writing. Every file is written to a hidden
temporary name and renamed into place, so a reader sees a whole old or a whole new file.
Plain warehouse code: the ``analyst_exports`` asset and ``helios export`` both call it.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb

from helios_pipeline.warehouse.backend import Warehouse, as_warehouse

TABLES = ("outcomes", "daily_stats")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]


def _old_layout(out_dir: Path) -> bool:
    """Exports written before this layout: ``<table>/day=YYYY-MM-DD/data.parquet``."""
    return any(any((out_dir / t).glob("day=*")) for t in TABLES)


def _warehouse_marks(db: Warehouse) -> dict[str, tuple[int, int, int]]:
    """Per day: outcome rows, daily_stats rows and summed requests (cheap change marks),
    in SQL both backends run."""
    marks = {str(d): [n, 0, 0] for d, n in db.execute(
        "SELECT day, count(*) FROM outcomes WHERE day IS NOT NULL GROUP BY day")}
    if db.has_table("daily_stats"):
        for d, n, req in db.execute(
                "SELECT day, count(*), CAST(sum(requests) AS BIGINT) "
                "FROM daily_stats GROUP BY day"):
            d = str(d)
            marks.setdefault(d, [0, 0, 0])[1:] = [n, req]
    return {d: tuple(m) for d, m in marks.items()}


def _export_marks(con: duckdb.DuckDBPyConnection, out_dir: Path) -> dict[str, tuple]:
    """The same marks, read from the export's files (the file name is the day)."""
    marks: dict[str, list[int]] = {}
    for i, (table, req) in enumerate((("outcomes", "0"),
                                      ("daily_stats", "sum(requests)::BIGINT"))):
        if not any((out_dir / table).glob("*.parquet")):
            continue
        glob = str((out_dir / table).resolve() / "*.parquet")
        for f, n, r in con.execute(
                f"SELECT filename, count(*), coalesce({req}, 0) FROM read_parquet(?, "
                "filename = true) GROUP BY ALL", [glob]).fetchall():
            mark = marks.setdefault(Path(f).stem, [0, 0, 0])
            if i == 0:
                mark[0] = n
            else:
                mark[1:] = [n, r]
    return {d: tuple(m) for d, m in marks.items()}


def stale_days(con: duckdb.DuckDBPyConnection | Warehouse, out_dir: Path) -> list[str]:
    """Days whose rows in the warehouse differ from the export's (new days included):
    what an incremental refresh rewrites. Everything while the old layout is there."""
    db = as_warehouse(con)
    warehouse = _warehouse_marks(db)
    if _old_layout(out_dir):
        return sorted(warehouse)
    exported = _export_marks(db.local, out_dir)
    return sorted(d for d, m in warehouse.items() if exported.get(d) != m)


def export(
    con: duckdb.DuckDBPyConnection | Warehouse,
    out_dir: Path,
    day_from: str | None = None,
    day_to: str | None = None,
    on_day: Callable[[str, int, int], None] | None = None,
    days: list[str] | None = None,
) -> dict:
    """Write the days in range (all by default; only ``days`` when given); returns counts.
    Used by the asset and the CLI. Days outside the selection keep their files. From a
    PostgreSQL warehouse each day's rows are copied into the local DuckDB first (backend.py
    ``to_local``), which writes the same files."""
    db = as_warehouse(con)
    out_dir.mkdir(parents=True, exist_ok=True)
    migrate = _old_layout(out_dir)
    if migrate:  # rewrite everything once in the new layout, then drop the old directories
        day_from = day_to = days = None
    where = (
        "WHERE day BETWEEN coalesce(CAST(? AS DATE), DATE '0001-01-01') "
        "AND coalesce(CAST(? AS DATE), DATE '9999-12-31')"
    )
    chosen = [
        str(d)
        for (d,) in db.execute(
            f"SELECT DISTINCT day FROM outcomes {where} AND day IS NOT NULL ORDER BY day",
            [day_from, day_to],
        )
    ]
    if days is not None:
        wanted = set(days)
        chosen = [d for d in chosen if d in wanted]
    tables = [t for t in TABLES if t == "outcomes" or db.has_table(t)]
    local = db.local
    counts = {"days": len(chosen), "outcomes": 0, "daily_stats": 0}
    for done, day in enumerate(chosen, start=1):
        for table in tables:
            folder = out_dir / table
            folder.mkdir(parents=True, exist_ok=True)
            rel = db.to_local(table, f"day = DATE '{day}'")
            cols = ", ".join("day::TIMESTAMP AS day" if c == "day" else f'"{c}"'
                             for c in _columns(local, rel))
            # hidden (no reader's glob picks it up) and unique (runs may overlap)
            tmp = folder / f".{day}.{uuid.uuid4().hex}.parquet.tmp"
            local.execute(
                f"COPY (SELECT {cols} FROM {rel} WHERE day = ?::DATE) "
                f"TO '{tmp}' (FORMAT parquet, COMPRESSION zstd)", [day]
            ).fetchall()
            counts[table] += local.execute(
                "SELECT count(*) FROM read_parquet(?)", [str(tmp)]).fetchall()[0][0]
            os.replace(tmp, folder / f"{day}.parquet")
        if on_day:
            on_day(day, done, len(chosen))
    if migrate:
        for table in TABLES:
            for old in (out_dir / table).glob("day=*"):
                shutil.rmtree(old)
    write_views(out_dir)
    return counts


def write_views(out_dir: Path) -> None:
    """``helios.duckdb``: the views, over paths relative to the export folder."""
    tmp = out_dir / f".helios.duckdb.{uuid.uuid4().hex}.tmp"
    views = duckdb.connect(str(tmp))
    try:  # the views bind now: resolve their relative paths against the folder
        views.execute(f"SET file_search_path = '{out_dir.resolve()}'").fetchall()
        for table in TABLES:
            if any((out_dir / table).glob("*.parquet")):
                views.execute(
                    f"CREATE VIEW {table} AS SELECT * REPLACE (day::DATE AS day) "
                    f"FROM read_parquet('{table}/*.parquet')"
                ).fetchall()
        views.close()
    except BaseException:
        views.close()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out_dir / "helios.duckdb")
