"""The warehouse tables are defined once (helios_pipeline/warehouse/tables.py): the live
tables after a real pipeline run, the PostgreSQL serving table and the exports have exactly
those columns and types, so DDL, ingest SQL and docs cannot drift apart."""

from __future__ import annotations

import duckdb
import pytest

from helios_pipeline.warehouse import tables
from tests.integration.test_api import sql
from tests.integration.test_snapshot_patch import story_rows

pytestmark = pytest.mark.integration

DUCK_TYPES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}  # DESCRIBE spells it out
PG_TYPES = {"TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ"}  # information_schema too


def described(db, table: str) -> list[tuple[str, str, bool]]:
    return [(name, DUCK_TYPES.get(kind, kind), null == "YES")
            for name, kind, null, *_ in sql(db, f"DESCRIBE {table}")]


def described_pg(wh, table: str) -> list[tuple[str, str, bool]]:
    with wh.open() as db:
        rows = db.execute(
            "SELECT column_name, upper(data_type), is_nullable FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            [table])
    return [(name, PG_TYPES.get(kind, kind), null == "YES") for name, kind, null in rows]


@pytest.mark.parametrize("backend", ["duckdb", "postgres"])
@pytest.mark.parametrize("table", ["bid_requests", "bid_responses", "auction_outcomes",
                                   "ingest_offsets", "outcomes"])
def test_live_tables_after_a_real_pipeline_run_match_their_typed_rows(request, table, backend):
    if backend == "duckdb":
        live = described(request.getfixturevalue("pipeline")["db"], table)
    else:
        live = described_pg(request.getfixturevalue("pipeline_pg")["warehouse"], table)
    expected = tables.columns(tables.TABLES[table], backend)
    assert [c[:2] for c in live] == [c[:2] for c in expected]
    # NOT NULL where the row says so (the key columns at least)
    for (name, _, nullable), (_, _, live_null) in zip(expected, live, strict=True):
        if not nullable:
            assert not live_null, name


def test_the_postgres_warehouse_publishes_the_same_serving_snapshot(pipeline, pipeline_pg):
    """The API reads the same file whichever backend the warehouse is on: every table of
    the snapshot, and its stories, equal, row for row, to the one published from DuckDB
    (the stories files' names, random per publish, aside)."""
    duck = duckdb.connect(":memory:")
    duck.execute(f"ATTACH '{pipeline['serving']}' AS d (READ_ONLY)")
    duck.execute(f"ATTACH '{pipeline_pg['serving']}' AS p (READ_ONLY)")
    names = [r[0] for r in duck.execute("SELECT table_name FROM duckdb_tables() WHERE "
                                        "database_name = 'd' ORDER BY 1").fetchall()]
    assert "outcomes" in names and "cube" in names
    for t in names:
        # sums of doubles differ in the last bits with the order rows were added: compare
        # them to 9 decimal places (CPMs in USD), everything else exactly
        typed = duck.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE "
                             "database_name = 'd' AND table_name = ? ORDER BY column_index",
                             [t]).fetchall()
        cols = ", ".join(f'round("{c}", 9) AS "{c}"' if ty == "DOUBLE" else f'"{c}"'
                         for c, ty in typed if c not in ("published_at", "stories"))
        assert duck.execute(f"SELECT {cols} FROM d.{t} EXCEPT ALL SELECT {cols} FROM p.{t}"
                            ).fetchall() == [], t
        assert duck.execute(f"SELECT {cols} FROM p.{t} EXCEPT ALL SELECT {cols} FROM d.{t}"
                            ).fetchall() == [], t
    n = duck.execute("SELECT count(*) FROM p.outcomes").fetchone()[0]
    assert n == pipeline["imps"]
    duck.close()
    stories = story_rows(pipeline["serving"])
    assert len(stories) == n and sorted(stories) == sorted(story_rows(pipeline_pg["serving"]))


def test_every_typed_table_creates_in_duckdb_and_postgres(pg_server, tmp_path):
    import psycopg2

    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    for row in tables.TABLES.values():
        con.execute(tables.ddl(row)).fetchall()
        got = [(n, DUCK_TYPES.get(k, k))
               for n, k, *_ in con.execute(f"DESCRIBE {row.__table__}").fetchall()]
        assert got == [(n, k) for n, k, _ in tables.columns(row)]
    con.close()
    server, _ = pg_server
    with psycopg2.connect(server.get_uri()) as pg, pg.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS tables_test; SET search_path TO tables_test")
        for row in tables.TABLES.values():
            cur.execute(tables.ddl(row, "postgres"))
            cur.execute("SELECT column_name FROM information_schema.columns WHERE "
                        "table_schema = 'tables_test' AND table_name = %s "
                        "ORDER BY ordinal_position", [row.__table__])
            assert [r[0] for r in cur.fetchall()] == tables.column_names(row)
        pg.rollback()


def test_every_table_asset_carries_its_column_schema_from_the_typed_rows():
    """The Dagster catalog is the data dictionary: same columns as the DDL, in order."""
    import dagster as dg

    from helios_pipeline.definitions import defs

    graph = defs.get_repository_def().asset_graph
    for key, row in (("bid_requests", tables.BidRequestRow),
                     ("bid_responses", tables.BidResponseRow),
                     ("auction_outcomes", tables.AuctionOutcomeRow),
                     ("outcomes", tables.OutcomeRow), ("daily_stats", tables.DailyStatsRow),
                     ("user_profiles", tables.UserProfileRow)):
        schema = graph.get(dg.AssetKey(key)).metadata["dagster/column_schema"]
        assert [(c.name, c.type) for c in schema.columns] == \
            [(n, t) for n, t, _ in tables.columns(row)], key
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert "topics/auction_outcomes_dlq" in keys
