"""The serving snapshot: a read-only DuckDB file the analytics API answers from.

DuckDB allows one writing process, and a Dagster run may hold the warehouse at any moment,
so the API never opens it. Instead, after each ingest that changed ``outcomes``, the run
writes a new snapshot next to the current one and renames it into place (``os.replace``
is atomic): a reader has the old file open or the new one, never half of one. The API
notices the new inode and switches; queries in flight finish on the file they started on.

What is in it:

* ``outcomes``: every row, with ``user_id`` from the request, ordered by ``rid``. Request
  ids are time-ordered (``messages.rid_at``), so this is also arrival order, and DuckDB's
  per-row-group min/max lets a story read from here (``WHERE rid = ?``, where the stories
  files are missing) read one row group, and a patch replace a tail of row groups;
* ``meta.stories`` names the snapshot's stories files (``meta.stories_from``: the first rid
  of each): the same rows as one JSON array each of the columns the API shows, keyed by
  (rid, imp_id), in SQLite beside it (stories.py): a request's story, and a page's rows,
  are point lookups, which a B-tree answers in 0.011 ms of CPU where any DuckDB query costs
  0.2 ms and the narrowest lookup 0.8 ms;
* ``cube``: counts and sums by day, hour, site, segment, media, enriched, outcome and loss
  reason, and smaller roll-ups of it (``ROLLUPS``), so statistics filtered on those
  dimensions answer from a few thousand rows instead of a scan;
* ``meta``: one row: ``as_of`` (newest ``decided_at``), ``published_at`` and ``rows``.

A whole publish copies the table (and formats every story), so its cost grows with history:
184–284 s at 10 M rows on this project's 2-core machine (bench/README.md). So a publish
normally patches a copy of the previous file instead (:func:`publish`): its cost follows the
rows changed since, plus one file copy. From a PostgreSQL warehouse the same file is written:
the rows it needs (all, or the changed tail) are read over ``COPY`` first.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from helios_pipeline.serving import stories

# the snapshot's shape, shared with the API (which must not import this module's
# warehouse dependencies: pyarrow and numpy cost the API process ~40 MiB)
from helios_pipeline.serving.layout import (
    CUBE_DIMS,
    ROLLUPS,
    ROW_GROUP_SIZE,
    STORIES_DDL,
    STORY_COLUMNS,
)
from helios_pipeline.warehouse.backend import Warehouse, as_warehouse

_SUMS = "sum(n) AS n, sum(bid_sum) AS bid_sum, sum(clearing_sum) AS clearing_sum, " \
        "sum(won_bid_sum) AS won_bid_sum, sum(floor_passes) AS floor_passes"

_OUTCOMES_SELECT = """
    SELECT o.*, r.user_id
    FROM (SELECT * FROM outcomes{where}) o
    LEFT JOIN (SELECT rid, imp_id, user_id FROM bid_requests{where}) r USING (rid, imp_id)
    ORDER BY o.rid, o.imp_id"""

_CUBE_SELECT = """
    SELECT day, CAST(extract(hour FROM received_at AT TIME ZONE 'UTC') AS INTEGER) AS hour,
           site_domain, segment, media, enriched, outcome, loss_reason,
           count(*) AS n,
           coalesce(sum(bid_price_usd) FILTER (WHERE outcome IN ('won', 'lost')), 0) AS bid_sum,
           coalesce(sum(clearing_price_usd) FILTER (WHERE outcome = 'won'), 0) AS clearing_sum,
           coalesce(sum(bid_price_usd) FILTER (WHERE outcome = 'won'), 0) AS won_bid_sum,
           count(*) FILTER (WHERE outcome IN ('won', 'lost')
                            AND bid_price_usd >= coalesce(floor_usd, 0)) AS floor_passes
    FROM snap.outcomes{where}
    GROUP BY ALL"""

# Bump when a snapshot table changes shape in a way the fingerprint below cannot see: a
# snapshot of another layout is rebuilt whole, never patched.
LAYOUT_VERSION = 5  # 2: patches keep ROW_GROUP_SIZE (a patched v1 file has 123 k-row groups)
# 3: stories.k; 4: row groups of 32 k rows, not 16 k; 5: stories in a SQLite file (stories.py)
# After this many publishes that patched the previous file, the next one rewrites it whole
# (a patched file keeps some space of the rows it replaced), and whenever the rows to
# re-copy are more than this share of all rows (patching would save little).
FULL_EVERY = 50
MAX_TAIL_SHARE = 0.2


def layout() -> str:
    """Fingerprint of the snapshot's shape: its tables' columns and grouping."""
    from helios_pipeline.warehouse import tables

    shape = (LAYOUT_VERSION, STORY_COLUMNS, STORIES_DDL, CUBE_DIMS, sorted(ROLLUPS.items()),
             ROW_GROUP_SIZE, [c[0] for c in tables.columns(tables.OutcomeRow)])
    return hashlib.sha1(repr(shape).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Published:
    path: Path
    rows: int
    as_of: str | None
    seconds: float
    mode: str = "full"  # full | patched | unchanged
    tail_rows: int = 0  # rows re-copied by a patch
    stories: tuple[str, ...] = ()  # the stories files' names (beside ``path``)


def publish(con: duckdb.DuckDBPyConnection | Warehouse, path: Path) -> Published:
    """Write a snapshot of the warehouse behind ``con`` to ``path``, atomically.

    The previous snapshot is patched when it can be: the ingest logs, in its own
    transactions, the rid ranges whose ``outcomes`` rows it changed (``serving_changes``);
    since rids grow with time, everything from the lowest logged rid on is the tail. A copy
    of the previous file gets its tail rows and the cube's days from that rid on replaced,
    and a new stories tail file (every row from the lowest rid changed since the last whole
    rewrite), then is renamed into place: the cost follows the new rows, not the history.
    A whole rewrite when there is no previous snapshot (or stories file), its layout
    differs, the tail is large, every ``FULL_EVERY`` patches, or when a patched copy or its
    stories do not hold exactly the warehouse's row count (a change made without the log,
    e.g. a bulk load). On a PostgreSQL warehouse, the rows to copy (all, or the tail) are
    first copied into the connection's local DuckDB (backend.py ``to_local``). Stories files
    that neither this snapshot nor the one before it name are removed afterwards."""
    t0 = time.perf_counter()
    db = as_warehouse(con)
    path.parent.mkdir(parents=True, exist_ok=True)
    has = {t for t in ("outcomes", "bid_requests", "serving_changes") if db.has_table(t)}
    changes = (db.execute("SELECT lo_rid, hi_rid, changed_at FROM serving_changes")
               if "serving_changes" in has else None)
    total = db.scalar("SELECT count(*) FROM outcomes") if "outcomes" in has else 0
    prev = _previous(path)
    pub = None
    if prev is not None and changes is not None and {"outcomes", "bid_requests"} <= has:
        lo = min((c[0] for c in changes), default=None)
        if lo is None and prev["rows"] == total:
            pub = Published(path, prev["rows"], prev["as_of"], time.perf_counter() - t0,
                            "unchanged", stories=prev["stories"])
        elif lo is not None and prev["patches"] < FULL_EVERY:
            since = min([lo, *prev["stories_from"][1:]])  # the stories tail's first rid
            tail = db.scalar("SELECT count(*) FROM outcomes WHERE rid >= ?", [since])
            base = prev["stories"][0]
            if tail <= MAX_TAIL_SHARE * total and (path.parent / base).is_file():
                pub = _patch(db, path, lo, since, base, total, prev["patches"] + 1, t0)
    if pub is None:
        pub = _write_whole(db, path, has, t0)
    stories.prune(path, {*pub.stories, *(prev["stories"] if prev else ())})
    if changes:  # applied (a whole rewrite includes them): exactly the rows read
        db.executemany("DELETE FROM serving_changes WHERE lo_rid = ? AND hi_rid = ? "
                       "AND changed_at = ?", changes)
    return pub


def _previous(path: Path) -> dict | None:
    """The current snapshot's meta, if it is there and of this layout."""
    if not path.exists():
        return None
    try:
        # attached in a fresh in-memory database: duckdb.connect(path) could hand back a
        # cached instance of the file this path named before the last rename (same process)
        with duckdb.connect() as snap:
            snap.execute(f"ATTACH '{path}' AS prev (READ_ONLY)")
            cols = {r[0] for r in snap.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_catalog = 'prev' AND table_name = 'meta'").fetchall()}
            if not {"layout", "patches", "stories", "stories_from"} <= cols:
                return None
            rows, as_of, lay, patches, names, froms = snap.execute(
                f"SELECT rows, {_AS_OF}, layout, patches, stories, stories_from "
                "FROM prev.meta").fetchall()[0]
    except duckdb.Error:
        return None
    return None if lay != layout() else {"rows": rows, "as_of": as_of, "patches": patches,
                                         "stories": tuple(names), "stories_from": froms}


_AS_OF = "strftime(as_of AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%gZ')"


def _meta(con: duckdb.DuckDBPyConnection, patches: int, story_files: tuple[str, ...],
          stories_from: tuple[str, ...]) -> tuple[int, str | None]:
    con.execute(
        "CREATE OR REPLACE TABLE snap.meta AS SELECT max(decided_at) AS as_of, "
        "now() AS published_at, count(*) AS rows, ? AS layout, ? AS patches, "
        "?::VARCHAR[] AS stories, ?::VARCHAR[] AS stories_from FROM snap.outcomes",
        [layout(), patches, list(story_files), list(stories_from)]).fetchall()
    rows, as_of = con.execute(f"SELECT rows, {_AS_OF} FROM snap.meta").fetchall()[0]
    return rows, as_of


def _write_whole(db: Warehouse, path: Path, has: set[str], t0: float) -> Published:
    if db.dialect != "duckdb" and {"outcomes", "bid_requests"} <= has:
        db.to_local("outcomes")
        db.to_local("bid_requests", columns=("rid", "imp_id", "user_id"))
    con = db.local
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    # Small row groups (layout.ROW_GROUP_SIZE): a filtered first page skips more of them,
    # 18.8 → 6.1 ms at 1 M rows with 16 k instead of DuckDB's default 123 k (measured).
    con.execute(f"ATTACH '{tmp}' AS snap (ROW_GROUP_SIZE {ROW_GROUP_SIZE})").fetchall()
    try:
        if {"outcomes", "bid_requests"} <= has:
            con.execute("CREATE TABLE snap.outcomes AS " + _OUTCOMES_SELECT.format(where="")
                        ).fetchall()
        else:  # nothing ingested yet: an empty snapshot, so readers see an empty state
            from helios_pipeline.warehouse import tables

            con.execute(tables.ddl(tables.OutcomeRow, name="snap.outcomes", key=False)
                        ).fetchall()
            con.execute("ALTER TABLE snap.outcomes ADD COLUMN user_id VARCHAR").fetchall()
        con.execute("CREATE TABLE snap.cube AS " + _CUBE_SELECT.format(where="")).fetchall()
        for name, dims in ROLLUPS.items():
            cols = ", ".join(dims)
            con.execute(f"CREATE TABLE snap.{name} AS SELECT {cols}, {_SUMS} FROM snap.cube "
                        f"GROUP BY {cols}").fetchall()
        story_file, _ = stories.write(con, path)
        rows, as_of = _meta(con, 0, (story_file.name,), ("",))
    except BaseException:
        con.execute("DETACH snap").fetchall()
        tmp.unlink(missing_ok=True)
        raise
    con.execute("DETACH snap").fetchall()
    os.replace(tmp, path)
    return Published(path, rows, as_of, time.perf_counter() - t0, "full",
                     stories=(story_file.name,))


def _patch(db: Warehouse, path: Path, lo: str, since: str, base: str, total: int,
           patches: int, t0: float) -> Published | None:
    """Copy the current snapshot, replace its rows from rid ``lo`` on, and give it the
    stories file ``base`` and a new tail from rid ``since`` on; None if the copy does not
    come out whole (the caller then rewrites it)."""
    where = " WHERE rid >= '" + lo.replace("'", "''") + "'"
    if db.dialect != "duckdb":
        db.to_local("outcomes", where=where.removeprefix(" WHERE "))
        db.to_local("bid_requests", where=where.removeprefix(" WHERE "),
                    columns=("rid", "imp_id", "user_id"))
    con = db.local
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.copyfile(path, tmp)
    # the file's row-group size is not stored in it: attached without it, the checkpoint
    # after the DELETEs merged every 16 k-row group into DuckDB's default 123 k (a story,
    # then read from this file, scanned 123 k rids: 5 instead of 0.7 ms of CPU, measured)
    con.execute(f"ATTACH '{tmp}' AS snap (ROW_GROUP_SIZE {ROW_GROUP_SIZE})").fetchall()
    ok, story_file = False, None
    try:
        # the days whose cube rows change: those of the rows replaced and of their successors
        first_day = con.execute(f"SELECT min(day) FROM snap.outcomes{where}").fetchall()[0][0]
        con.execute(f"DELETE FROM snap.outcomes{where}").fetchall()
        tail = con.execute("INSERT INTO snap.outcomes " + _OUTCOMES_SELECT.format(where=where)
                           ).fetchall()[0][0]
        story_file, story_rows = stories.write(con, path, since)
        expected = con.execute("SELECT count(*) FROM snap.outcomes WHERE rid >= ?",
                               [since]).fetchall()[0][0]
        new_day = con.execute(f"SELECT min(day) FROM snap.outcomes{where}").fetchall()[0][0]
        days = [d for d in (first_day, new_day) if d is not None]
        if days:
            in_days = f" WHERE day >= DATE '{min(days)}' OR day IS NULL"
            con.execute(f"DELETE FROM snap.cube{in_days}").fetchall()
            con.execute("INSERT INTO snap.cube " + _CUBE_SELECT.format(where=in_days)
                        ).fetchall()
            for name, dims in ROLLUPS.items():
                cols = ", ".join(dims)
                con.execute(f"DELETE FROM snap.{name}{in_days}").fetchall()
                con.execute(f"INSERT INTO snap.{name} SELECT {cols}, {_SUMS} FROM snap.cube"
                            f"{in_days} GROUP BY {cols}").fetchall()
        rows, as_of = _meta(con, patches, (base, story_file.name), ("", since))
        ok = rows == total and story_rows == expected
    finally:
        con.execute("DETACH snap").fetchall()
        if not ok:
            tmp.unlink(missing_ok=True)
            if story_file is not None:
                story_file.unlink(missing_ok=True)
    if not ok:
        return None
    os.replace(tmp, path)
    return Published(path, rows, as_of, time.perf_counter() - t0, "patched", tail,
                     (base, story_file.name))
