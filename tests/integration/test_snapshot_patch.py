"""The serving snapshot patched in place of a rewrite (serving/snapshot.py) equals a rewrite.

A warehouse of 60,000 time-ordered outcome rows (bulk-loaded with SQL, like the ingest's
rids they grow with time) is published whole; then an "ingest" adds rows, changes some
recent ones and logs the rid range in ``serving_changes``, as ``ingest_topic`` does. The
next publish must patch the previous file (re-copy only the tail) and come out equal, table
by table, to a snapshot written whole from the same warehouse, with ``stories`` row ids
still pairing with ``outcomes``' (the API's page reads both by row id). The fallbacks are
checked too: nothing logged → unchanged; rows added without the log → a whole rewrite; a
snapshot of another layout → a whole rewrite; the applied log rows are gone afterwards.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from helios_pipeline.serving.snapshot import ROLLUPS, ROW_GROUP_SIZE, publish
from helios_pipeline.warehouse import tables
from tests.integration.test_api import BULK

pytestmark = pytest.mark.integration

N = 60_000
# the API tests' bulk rows, with time-ordered rids (as the gateway makes them)
ORDERED = BULK.replace("md5(i::VARCHAR)", "printf('%016d', i)").replace(
    "FROM range(?) t(i)", "FROM range(?, ?) t(i)")
REQUESTS = ("INSERT INTO bid_requests (rid, imp_id, received_at, user_id) "
            "SELECT rid, imp_id, received_at, 'u' || (hash(rid) % 500) FROM outcomes "
            "WHERE rid >= printf('%016d', ?)")


def rid(i: int) -> str:
    return f"{i:016d}"


@pytest.fixture
def warehouse(tmp_path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "wh.duckdb"))
    for row in (tables.OutcomeRow, tables.BidRequestRow, tables.ServingChange):
        con.execute(tables.ddl(row, key=False)).fetchall()
    con.execute(ORDERED, [0, N]).fetchall()
    con.execute(REQUESTS, [0]).fetchall()
    yield con
    con.close()


def ingest_like(con: duckdb.DuckDBPyConnection, first: int, new: int, changed: int) -> None:
    """``new`` rows after ``first``, ``changed`` rows before it updated, the range logged."""
    con.execute(ORDERED, [first, first + new]).fetchall()
    con.execute(REQUESTS, [first]).fetchall()
    con.execute("UPDATE outcomes SET outcome = 'won', clearing_price_usd = 1.25, "
                "loss_reason = NULL WHERE rid >= ? AND rid < ?",
                [rid(first - changed), rid(first)]).fetchall()
    con.execute("INSERT INTO serving_changes (lo_rid, hi_rid) VALUES (?, ?)",
                [rid(first - changed), rid(first + new - 1)]).fetchall()


def differences(a: Path, b: Path) -> dict[str, int]:
    """Rows of each snapshot table in one file and not the other (both ways; sums to 1e-6),
    and in ``a``, story row ids that do not name the same rid as in ``outcomes``."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    out = {}
    for t in ("outcomes", "stories", "cube", *ROLLUPS):
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'a' "
            "AND table_name = ? ORDER BY ordinal_position", [t]).fetchall()]
        sel = ", ".join(f"round({c}, 6)" if c.endswith("_sum") else c for c in cols)
        out[t] = con.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {sel} FROM a.{t} EXCEPT ALL "
            f"SELECT {sel} FROM b.{t})) + (SELECT count(*) FROM (SELECT {sel} FROM b.{t} "
            f"EXCEPT ALL SELECT {sel} FROM a.{t}))").fetchall()[0][0]
    out["misaligned"] = con.execute(
        "SELECT count(*) FROM a.outcomes o FULL JOIN a.stories s ON o.rowid = s.rowid "
        "WHERE o.rid IS DISTINCT FROM s.rid").fetchall()[0][0]
    out["meta"] = int(con.execute("SELECT count(*) FROM (SELECT rows, as_of FROM a.meta "
                                  "EXCEPT SELECT rows, as_of FROM b.meta)").fetchall()[0][0])
    con.close()
    return out


ZERO = {t: 0 for t in ("outcomes", "stories", "cube", *ROLLUPS, "misaligned", "meta")}


def test_a_patched_snapshot_equals_a_rewrite(warehouse, tmp_path):
    path, whole = tmp_path / "serving.duckdb", tmp_path / "whole.duckdb"
    first = publish(warehouse, path)
    assert first.mode == "full" and first.rows == N
    stale = tmp_path / "stale.duckdb"
    shutil.copyfile(path, stale)
    ingest_like(warehouse, N, new=1_500, changed=400)
    patched = publish(warehouse, path)
    assert patched.mode == "patched" and patched.rows == N + 1_500
    assert patched.tail_rows == 1_900  # the changed rows and the new ones, nothing else
    assert warehouse.execute("SELECT count(*) FROM serving_changes").fetchall()[0][0] == 0
    assert publish(warehouse, path).mode == "unchanged"  # nothing logged since
    assert publish(warehouse, whole).mode == "full"  # no previous file there
    assert differences(path, whole) == ZERO
    found = differences(stale, whole)  # the comparison does see what the patch changed
    assert all(found[t] > 0 for t in ("outcomes", "stories", "cube", *ROLLUPS, "meta"))
    # again, on a file that was patched already
    ingest_like(warehouse, N + 1_500, new=700, changed=50)
    again = publish(warehouse, path)
    assert again.mode == "patched" and again.tail_rows == 750
    whole.unlink()
    publish(warehouse, whole)
    assert differences(path, whole) == ZERO


def test_changes_without_the_log_and_other_layouts_are_rewritten_whole(warehouse, tmp_path):
    path, whole = tmp_path / "serving.duckdb", tmp_path / "whole.duckdb"
    publish(warehouse, path)
    warehouse.execute(ORDERED, [N, N + 100]).fetchall()  # a bulk load: nothing logged
    assert publish(warehouse, path).mode == "full"
    publish(warehouse, whole)
    assert differences(path, whole) == ZERO
    with duckdb.connect(str(path)) as snap:  # as if written by another version
        snap.execute("UPDATE meta SET layout = 'older'")
    ingest_like(warehouse, N + 100, new=10, changed=0)
    assert publish(warehouse, path).mode == "full"
    # a large tail (more than MAX_TAIL_SHARE of the rows) is not worth patching
    ingest_like(warehouse, N + 110, new=30_000, changed=0)
    assert publish(warehouse, path).mode == "full"


def largest_row_group(path: Path, table: str) -> tuple[int, int]:
    """(rows in the largest row group, row groups) of ``table`` in a snapshot file."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{path}' AS s (READ_ONLY)")
    sizes = [r[0] for r in con.execute(
        f"SELECT sum(count) FROM pragma_storage_info('s.{table}') WHERE column_name = 'rid' "
        "AND segment_type <> 'VALIDITY' GROUP BY row_group_id").fetchall()]
    con.close()
    return max(sizes), len(sizes)


def test_a_patched_snapshot_keeps_its_small_row_groups(warehouse, tmp_path):
    """The story lookup reads one row group by its min/max rid, so the row groups must stay
    small (ROW_GROUP_SIZE) after a patch too: attached without the size, the patch's
    checkpoint merged them all into DuckDB's default 122,880 rows, and every lookup at 1 M
    rows scanned 7.5× more rids (5 instead of 0.7 ms of CPU)."""
    path = tmp_path / "serving.duckdb"
    publish(warehouse, path)
    groups = -(-N // ROW_GROUP_SIZE)
    for table in ("outcomes", "stories"):
        assert largest_row_group(path, table) == (ROW_GROUP_SIZE, groups)
    ingest_like(warehouse, N, new=1_500, changed=400)
    assert publish(warehouse, path).mode == "patched"
    for table in ("outcomes", "stories"):
        biggest, count = largest_row_group(path, table)
        assert biggest <= ROW_GROUP_SIZE and count >= groups, (table, biggest, count)


def test_a_story_is_found_by_its_key_and_only_its_own_rows(warehouse, tmp_path):
    """``stories.k`` (the rid's first 16 hex digits) is shared by requests of one process
    in one millisecond: the lookup by key keeps only the asked rid's rows; a rid that is
    not hex is found by itself; an unknown one gives nothing."""
    from helios_pipeline.api.store import SnapshotStore

    base = rid(5)  # 16 decimal digits: valid hex, so a key
    for rid_sql in (f"'{base}' || 'aa'", f"'{base}' || 'bb'", f"'zz' || '{base}'"):
        for table in ("outcomes", "bid_requests"):
            warehouse.execute(f"INSERT INTO {table} SELECT * REPLACE ({rid_sql} AS rid) "
                              f"FROM {table} WHERE rid = ?", [base]).fetchall()
    path = tmp_path / "serving.duckdb"
    publish(warehouse, path)
    store = SnapshotStore(path)
    snap = store.current()
    try:
        assert snap.has_story_key
        keys = {r[0] for r in snap.query("SELECT DISTINCT k FROM stories WHERE rid LIKE ?",
                                         [f"{base}%"])}
        assert keys == {int(base, 16)}  # three requests share one key
        expected = snap.query("SELECT count(*) FROM outcomes WHERE rid = ?", [base])[0][0]
        assert expected >= 1
        for asked in (base, base + "aa", base + "bb", "zz" + base):
            rows = snap.story_rows(asked)
            assert len(rows) == expected and {r[0] for r in rows} == {asked}, asked
        assert snap.story_rows(rid(10**9)) == [] and snap.story_rows("no-such-rid") == []
    finally:
        store.close()
