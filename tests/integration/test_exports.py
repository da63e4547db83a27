"""Analyst exports (issue #11): a moved export folder still opens, pandas and DuckDB read
the same types, docs/analysts.md runs against a real export, and the export run the
automation launches after an ingest brings today's export to the warehouse's row count
(nothing when idle)."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from helios_pipeline.warehouse import schema, tables
from helios_pipeline.warehouse.exports import export, stale_days

pytestmark = pytest.mark.integration
DOC = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"
TODAY = datetime.now(UTC).date()
YESTERDAY = TODAY - timedelta(days=1)


def add_outcomes(db: Path, day: date, start: int, n: int) -> None:
    """``n`` outcome rows of ``day`` and that day's daily_stats (what ingest + stats do)."""
    con = duckdb.connect(str(db))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(tables.ddl(tables.OutcomeRow, key=False))
        con.execute(schema.DAILY_STATS)
        con.execute(f"""
        INSERT INTO outcomes (rid, imp_id, day, received_at, domain, site_domain, segment,
                              media, floor_usd, bid_price_usd, auction_type, enriched,
                              outcome, clearing_price_usd, loss_reason, nobid_reason)
        SELECT 'r{day}-' || i, '1', DATE '{day}',
               (DATE '{day}' + INTERVAL (i % 24) HOUR)::TIMESTAMPTZ,
               'site' || (i % 7) || '.example', 'site' || (i % 7) || '.example',
               ['sports', 'news'][i % 2 + 1], ['banner', 'video'][(i // 2) % 2 + 1], 0.4,
               CASE WHEN i % 5 < 4 THEN 0.5 + (i % 13) * 0.05 END, 1 + i % 2, i % 3 = 0,
               CASE WHEN i % 5 = 0 THEN 'won' WHEN i % 5 < 4 THEN 'lost' ELSE 'nobid' END,
               CASE WHEN i % 5 = 0 THEN 0.5 + (i % 13) * 0.04 END,
               CASE WHEN i % 5 = 0 THEN 0 WHEN i % 5 < 4 THEN 102 END,
               CASE WHEN i % 5 = 4 THEN 'below_floor' END
        FROM range({start}, {start + n}) t(i)""")
        con.execute("DELETE FROM daily_stats WHERE day = ?", [day])
        con.execute(schema.DAILY_STATS_FOR_DAY, [day])
    finally:
        con.close()


@pytest.fixture
def warehouse(tmp_path) -> Path:
    db = tmp_path / "wh.duckdb"
    add_outcomes(db, YESTERDAY, 0, 900)
    add_outcomes(db, TODAY, 0, 1200)
    return db


def write_export(db: Path, out: Path, **kw) -> dict:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return export(con, out, **kw)
    finally:
        con.close()


def count(db: Path, sql: str) -> int:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_a_moved_export_folder_opens_from_anywhere(warehouse, tmp_path, monkeypatch):
    write_export(warehouse, tmp_path / "first")
    assert sorted(p.name for p in (tmp_path / "first" / "outcomes").iterdir()) == [
        f"{YESTERDAY}.parquet", f"{TODAY}.parquet"]
    moved = tmp_path / "elsewhere" / "copy"
    moved.parent.mkdir()
    shutil.move(tmp_path / "first", moved)
    con = duckdb.connect(str(moved / "helios.duckdb"), read_only=True)
    views = " ".join(sql for (sql,) in con.execute("SELECT sql FROM duckdb_views() "
                                                   "WHERE NOT internal").fetchall())
    assert str(tmp_path) not in views  # nothing names where it was written
    monkeypatch.chdir(tmp_path)  # from elsewhere: the one documented line
    con.execute(f"SET file_search_path = '{moved}'")
    assert con.execute("SELECT count(*) FROM outcomes").fetchone() == (2100,)
    assert con.execute("SELECT count(*) FROM daily_stats WHERE day = ?", [TODAY]).fetchone()[0]
    con.close()
    monkeypatch.chdir(moved)  # from the folder itself: nothing to set
    con = duckdb.connect("helios.duckdb", read_only=True)
    assert con.execute("SELECT count(*) FROM outcomes").fetchone() == (2100,)
    # the views keep the warehouse's columns and types (day is a DATE for SQL users)
    wh = duckdb.connect(str(warehouse), read_only=True)
    for table in ("outcomes", "daily_stats"):
        assert ([r[:2] for r in con.execute(f"DESCRIBE {table}").fetchall()]
                == [r[:2] for r in wh.execute(f"DESCRIBE {table}").fetchall()])
    wh.close()
    con.close()


def test_pandas_and_duckdb_read_the_same_types(warehouse, tmp_path):
    out = tmp_path / "exports"
    write_export(warehouse, out)
    con = duckdb.connect(str(out / "helios.duckdb"), read_only=True)
    con.execute(f"SET file_search_path = '{out}'")
    for table, counts in (("daily_stats", ["hour", "requests", "bids", "wins",
                                           "floor_passes"]),
                          ("outcomes", [])):
        frame = pd.read_parquet(out / table)
        sql = con.sql(f"SELECT * FROM {table}").df()
        assert list(frame.columns) == list(sql.columns)
        assert str(frame["day"].dtype).startswith("datetime64")
        assert frame["day"].dtype == sql["day"].dtype
        for c in counts:
            assert frame[c].dtype == sql[c].dtype, c
            assert frame[c].dtype.kind == "i", c
        assert sorted(frame["day"].dt.date.unique()) == [YESTERDAY, TODAY]
    con.close()


def doc_blocks(lang: str) -> list[str]:
    return [re.sub(r"(?m)^   ", "", b) for b in
            re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)]


def test_the_analysts_doc_runs_on_a_real_export_with_duckdb_and_pandas(
        warehouse, tmp_path, monkeypatch):
    home = tmp_path / "nb"
    write_export(warehouse, tmp_path / "written")
    (home / ".helios").mkdir(parents=True)
    shutil.move(tmp_path / "written", home / ".helios" / "exports")  # a moved export
    monkeypatch.chdir(home)
    ns: dict = {}
    python = doc_blocks("python")
    assert len(python) >= 2
    for block in python:
        exec(compile(block, str(DOC), "exec"), ns)  # the doc's own examples
    pd.testing.assert_frame_equal(ns["by_day"], ns["by_day_sql"])  # same numbers and dtypes
    assert list(ns["by_day"]["requests"]) == [900, 1200]
    assert str(ns["by_day"]["day"].dtype).startswith("datetime64")
    assert ns["by_day"]["wins"].dtype == "int64"
    con = ns["con"]
    duck_sql = [b for b in doc_blocks("sql") if "psql" not in b]
    assert len(duck_sql) == 5
    for sql in duck_sql:
        res = con.sql(sql).df()
        assert len(res) > 0, sql
        for c in ("imps", "bids", "wins"):
            if c in res.columns:
                assert res[c].dtype == "int64", (c, sql)  # counts stay integers
    first = con.sql(duck_sql[0]).df()
    assert list(first["imps"]) == [900, 1200]
    con.close()


def run_ingest_exports(db: Path, exports: Path, monkeypatch) -> dg.ExecuteInProcessResult:
    """``analyst_exports`` as the automation sensor launches it after an ingest: the code
    location's asset job, default config (the rows are inserted directly, no Kafka)."""
    from helios_pipeline.definitions import defs

    for name, value in {"WAREHOUSE_PATH": db, "WAREHOUSE_BACKEND": "duckdb",
                        "WAREHOUSE_DSN": "", "EXPORTS_DIR": exports,
                        "REPORTS_DIR": db.parent / "reports", "SERVING_PATH": "",
                        "KAFKA_BOOTSTRAP": "127.0.0.1:1", "REDIS_URL": "redis://127.0.0.1:1",
                        "POSTGRES_DSN": "", "TOPIC_OUTCOMES": "o", "TOPIC_REQUESTS": "q",
                        "TOPIC_RESPONSES": "r"}.items():
        monkeypatch.setenv(f"HELIOS_{name}", str(value))
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(asset_selection=[dg.AssetKey("analyst_exports")],
                                  instance=dg.DagsterInstance.ephemeral())


def materialized(res: dg.ExecuteInProcessResult) -> list:
    return res.asset_materializations_for_node("analyst_exports")


def test_ingest_keeps_todays_export_at_the_warehouse_count(warehouse, tmp_path, monkeypatch):
    exports = tmp_path / "exports"
    first = run_ingest_exports(warehouse, exports, monkeypatch)
    assert first.success and len(materialized(first)) == 1  # first run: every day
    yesterday_file = exports / "outcomes" / f"{YESTERDAY}.parquet"
    before = yesterday_file.stat().st_mtime_ns

    add_outcomes(warehouse, TODAY, 1200, 345)  # an ingest adds rows for today
    con = duckdb.connect(str(warehouse), read_only=True)
    assert stale_days(con, exports) == [str(TODAY)]
    con.close()
    res = run_ingest_exports(warehouse, exports, monkeypatch)
    assert res.success
    md = materialized(res)[0].metadata
    assert md["days_written"].value == str(TODAY)
    assert md["dagster/row_count"].value == 2445 and "newest_row_at" in md  # the whole export
    views = duckdb.connect(str(exports / "helios.duckdb"), read_only=True)
    views.execute(f"SET file_search_path = '{exports}'")
    assert views.execute("SELECT count(*) FROM outcomes").fetchone()[0] == count(
        warehouse, "SELECT count(*) FROM outcomes") == 2445
    assert views.execute("SELECT sum(requests) FROM daily_stats").fetchone()[0] == 2445
    views.close()
    assert yesterday_file.stat().st_mtime_ns == before  # untouched days are not rewritten

    idle = run_ingest_exports(warehouse, exports, monkeypatch)  # nothing changed
    assert idle.success and materialized(idle) == []
    # how often it runs (at most once per HELIOS_EXPORT_REFRESH_S, only after a change) is
    # the automation condition's: test_dagster.py evaluates it against a real instance


def test_old_hive_layout_is_rewritten_once(warehouse, tmp_path):
    out = tmp_path / "exports"
    old = out / "outcomes" / f"day={TODAY}"
    old.mkdir(parents=True)
    (old / "data.parquet").write_bytes(b"")
    write_export(warehouse, out, days=[str(TODAY)])  # a partial refresh migrates everything
    assert not old.exists()
    assert sorted(p.name for p in (out / "outcomes").iterdir()) == [
        f"{YESTERDAY}.parquet", f"{TODAY}.parquet"]


def test_a_postgres_warehouse_exports_the_same_files(warehouse, tmp_path, pg_server):
    """HELIOS_WAREHOUSE_BACKEND=postgres: the same rows in PostgreSQL give the same Parquet
    files (types included) and views, and the same stale days after a change."""
    from tests.integration.conftest import WarehouseSpec

    server, _ = pg_server
    wh = WarehouseSpec("postgres", dsn=server.get_uri(), schema=f"exp_{tmp_path.name[-12:]}")
    duck_out, pg_out = tmp_path / "from-duckdb", tmp_path / "from-postgres"
    write_export(warehouse, duck_out)
    with wh.open() as db:
        db.ddl(tables.OutcomeRow, key=False)
        db.ddl(tables.DailyStatsRow)
        db.local.execute(f"ATTACH '{warehouse}' AS src (READ_ONLY)")
        for t in ("outcomes", "daily_stats"):
            assert db.load(t, f"SELECT * FROM src.{t}") > 0
        counts = export(db, pg_out)
        assert stale_days(db, pg_out) == []
        db.execute("INSERT INTO outcomes (rid, imp_id, day) VALUES ('late', '1', ?)", [TODAY])
        assert stale_days(db, pg_out) == [str(TODAY)]
    assert counts == {"days": 2, "outcomes": 2100, "daily_stats": counts["daily_stats"]}
    con = duckdb.connect()
    for table in ("outcomes", "daily_stats"):
        for f in sorted((duck_out / table).glob("*.parquet")):
            a, b = f"read_parquet('{f}')", f"read_parquet('{pg_out / table / f.name}')"
            assert con.execute(f"DESCRIBE SELECT * FROM {a}").fetchall() == \
                con.execute(f"DESCRIBE SELECT * FROM {b}").fetchall()
            assert con.execute(f"SELECT count(*) FROM (FROM {a} EXCEPT ALL FROM {b}) x "
                               ).fetchone()[0] == 0, f
            assert con.execute(f"SELECT count(*) FROM {a}").fetchone()[0] == \
                con.execute(f"SELECT count(*) FROM {b}").fetchone()[0]
    con.close()
    views = duckdb.connect(str(pg_out / "helios.duckdb"), read_only=True)
    views.execute(f"SET file_search_path = '{pg_out}'")
    assert views.execute("SELECT count(*) FROM outcomes").fetchone()[0] == 2100
    views.close()
