"""The serving snapshot patched in place of a rewrite (serving/snapshot.py) equals a rewrite.

A warehouse of 60,000 time-ordered outcome rows (bulk-loaded with SQL, like the ingest's
rids they grow with time) is published whole; then an "ingest" adds rows, changes some
recent ones and logs the rid range in ``serving_changes``, as ``ingest_topic`` does. The
next publish must patch the previous file and its stories file (re-copy only the tail) and
come out equal, table by table, to a snapshot written whole from the same warehouse, with a
story for every outcome row and none more. The fallbacks are checked too: nothing logged →
unchanged; rows added without the log → a whole rewrite; a snapshot of another layout, or
whose stories file is gone → a whole rewrite; the applied log rows are gone afterwards; only
the stories files of the current snapshot and the one before it are kept.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import duckdb
import pytest

from helios_pipeline.serving import stories
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


def story_files(snapshot: Path) -> list[tuple[Path, str]]:
    """The snapshot's stories files, each with the first rid it answers for."""
    con = duckdb.connect(str(snapshot), read_only=True)
    names, froms = con.execute("SELECT stories, stories_from FROM meta").fetchall()[0]
    con.close()
    return [(snapshot.parent / n, f) for n, f in zip(names, froms, strict=True)]


def story_rows(snapshot: Path) -> list[tuple]:
    """Every (rid, imp_id, row) the API can read: from each stories file, the rids of its
    range (a base's rows from the tail's first rid on are stale and never asked)."""
    files, rows = story_files(snapshot), []
    for i, (f, lo) in enumerate(files):
        hi = files[i + 1][1] if i + 1 < len(files) else "\U0010ffff"
        db = sqlite3.connect(f"file:{f}?mode=ro", uri=True)
        rows += db.execute("SELECT rid, imp_id, row FROM stories WHERE rid >= ? AND rid < ?",
                           (lo, hi)).fetchall()
        db.close()
    return rows


def differences(a: Path, b: Path) -> dict[str, int]:
    """Rows of each snapshot table in one file and not the other (both ways; sums to 1e-6),
    the same for the two stories files, and in ``a``, outcome rows without a story or
    stories without an outcome row."""
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    out = {}
    sa, sb = story_rows(a), story_rows(b)
    out["stories"] = len(set(sa) ^ set(sb)) + abs(len(sa) - len(sb))
    keys = {r[:2] for r in sa}
    outcomes = set(con.execute("SELECT rid, imp_id FROM a.outcomes").fetchall())
    out["misaligned"] = len(keys ^ outcomes) + abs(len(sa) - len(keys))
    for t in ("outcomes", "cube", *ROLLUPS):
        cols = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = 'a' "
            "AND table_name = ? ORDER BY ordinal_position", [t]).fetchall()]
        sel = ", ".join(f"round({c}, 6)" if c.endswith("_sum") else c for c in cols)
        out[t] = con.execute(
            f"SELECT (SELECT count(*) FROM (SELECT {sel} FROM a.{t} EXCEPT ALL "
            f"SELECT {sel} FROM b.{t})) + (SELECT count(*) FROM (SELECT {sel} FROM b.{t} "
            f"EXCEPT ALL SELECT {sel} FROM a.{t}))").fetchall()[0][0]
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
    [(base, _)] = story_files(path)
    shutil.copyfile(base, tmp_path / "stale-stories.sqlite")
    with duckdb.connect(str(stale)) as con:  # its own copy: publishes prune old files
        con.execute("UPDATE meta SET stories = ['stale-stories.sqlite']")
    ingest_like(warehouse, N, new=1_500, changed=400)
    patched = publish(warehouse, path)
    assert patched.mode == "patched" and patched.rows == N + 1_500
    assert patched.tail_rows == 1_900  # the changed rows and the new ones, nothing else
    assert patched.stories[0] == first.stories[0] == base.name  # the base is not rewritten
    assert [f[1] for f in story_files(path)] == ["", rid(N - 400)]
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
    # the stories tail starts at the lowest rid changed since the whole rewrite
    assert [f[1] for f in story_files(path)] == ["", rid(N - 400)]
    assert again.stories[0] == base.name and again.stories[1] != patched.stories[1]
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
    """A filtered page's Top-N skips row groups by their min/max, so the row groups must
    stay small (ROW_GROUP_SIZE) after a patch too: attached without the size, the patch's
    checkpoint merged them all into DuckDB's default 122,880 rows."""
    path = tmp_path / "serving.duckdb"
    publish(warehouse, path)
    groups = -(-N // ROW_GROUP_SIZE)
    assert largest_row_group(path, "outcomes") == (ROW_GROUP_SIZE, groups)
    ingest_like(warehouse, N, new=1_500, changed=400)
    assert publish(warehouse, path).mode == "patched"
    biggest, count = largest_row_group(path, "outcomes")
    assert biggest <= ROW_GROUP_SIZE and count >= groups, (biggest, count)


def test_a_story_has_its_own_rows_only(warehouse, tmp_path):
    """Requests whose rids share a prefix (one gateway process in one millisecond) or are
    not hex each get their own rows, in imp id order; an unknown rid gets none."""
    from helios_pipeline.api.store import SnapshotStore

    base = rid(5)
    for rid_sql in (f"'{base}' || 'aa'", f"'{base}' || 'bb'", f"'zz' || '{base}'"):
        for table in ("outcomes", "bid_requests"):
            warehouse.execute(f"INSERT INTO {table} SELECT * REPLACE ({rid_sql} AS rid) "
                              f"FROM {table} WHERE rid = ?", [base]).fetchall()
    warehouse.execute("INSERT INTO outcomes SELECT * REPLACE ('0' AS imp_id) FROM outcomes "
                      "WHERE rid = ?", [base + "aa"]).fetchall()
    path = tmp_path / "serving.duckdb"
    publish(warehouse, path)
    store = SnapshotStore(path)
    snap = store.current()
    try:
        assert snap.stories is not None
        for asked in (base, base + "aa", base + "bb", "zz" + base):
            expected = snap.query("SELECT imp_id FROM outcomes WHERE rid = ? ORDER BY imp_id",
                                  [asked])
            rows = snap.story_rows(asked)
            assert expected and [r[1] for r in rows] == [e[0] for e in expected], asked
            assert {r[0] for r in rows} == {asked}, asked
        assert snap.story_rows(rid(10**9)) == [] and snap.story_rows("no-such-rid") == []
    finally:
        store.close()


def test_stories_files_are_kept_for_the_current_snapshot_and_the_one_before(warehouse,
                                                                            tmp_path):
    """Each publish writes a new stories tail (a file a snapshot names never changes) and
    removes the files that neither the new snapshot nor the one before it name; a snapshot
    whose stories base is gone is rewritten whole, not patched."""
    path = tmp_path / "serving.duckdb"
    pubs = []
    for i in range(4):
        ingest_like(warehouse, N + 10 * i, new=10, changed=2)
        pubs.append(publish(warehouse, path))
        assert pubs[-1].stories == tuple(f[0].name for f in story_files(path))
        on_disk = {f.name for f in tmp_path.glob(stories.pattern(path))}
        assert on_disk == {*pubs[-1].stories, *(pubs[-2].stories if i else ())}, i
    assert [p.mode for p in pubs] == ["full", "patched", "patched", "patched"]
    assert len({p.stories[-1] for p in pubs}) == 4  # a new tail each time, one base
    assert {p.stories[0] for p in pubs} == {pubs[0].stories[0]}
    story_files(path)[0][0].unlink()
    ingest_like(warehouse, N + 40, new=10, changed=2)
    again = publish(warehouse, path)
    assert again.mode == "full" and len(again.stories) == 1
    assert len(story_rows(path)) == again.rows
