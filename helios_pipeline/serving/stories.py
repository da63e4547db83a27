"""The stories files: every outcome row of a serving snapshot as one JSON array, keyed by
(rid, imp_id), in SQLite beside the snapshot (layout.STORIES_DDL says why SQLite).

Written by publish (snapshot.py) from the new snapshot's own ``outcomes`` while it is still
a temporary file. A snapshot names a base file, written by a whole rewrite, and, after a
patch, a tail file with every row from the lowest rid changed since then; the reader asks
the file whose range holds the rid (the base's rows in the tail's range are stale and never
asked). So a patch writes only the tail (rows since the last whole rewrite), never copies
the base: copying a 10 M-row base cost 18 s of a 30 s patch (measured). A file never
changes once a snapshot names it (the API opens it immutable); files no snapshot can still
name are removed (:func:`prune`).
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import duckdb

from helios_pipeline.serving.layout import STORIES_DDL, STORIES_PREFIX, STORY_COLUMNS

_TIMES = ("received_at", "decided_at")  # as epoch_us (api queries._iso formats them)
# DuckDB writes epoch microseconds twice as fast as an ISO string; the API formats per answer
ROW_SQL = "json_array(" + ", ".join(
    f"epoch_us({c})" if c in _TIMES else c for c in STORY_COLUMNS) + ")"
BATCH = 50_000  # rows per fetch from DuckDB / executemany into SQLite


def name(snapshot: Path, token: str) -> str:
    """A stories file's name beside ``snapshot``; ``token`` "*" gives the glob of them all."""
    return f"{snapshot.name}{STORIES_PREFIX}{token}.sqlite"


def pattern(snapshot: Path) -> str:
    return name(snapshot, "*")


def write(con: duckdb.DuckDBPyConnection, snapshot: Path, since: str | None = None
          ) -> tuple[Path, int]:
    """A new stories file for ``snapshot`` from ``snap.outcomes`` (attached to ``con``):
    all its rows, or those from rid ``since`` on. Returns the file and its row count."""
    dest = snapshot.with_name(name(snapshot, uuid.uuid4().hex[:12]))
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        db = sqlite3.connect(tmp, isolation_level=None)
        try:
            # no journal: a crash leaves only a temporary file behind, never one a snapshot
            # names; NORMAL: SQLite syncs the file at COMMIT, so it is on disk before a
            # snapshot names it (the next patch keeps the base as it is)
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute(STORIES_DDL)
            db.execute("BEGIN")
            where, params = ("", []) if since is None else (" WHERE rid >= ?", [since])
            # a plain scan keeps the snapshot's (rid, imp_id) order: the B-tree's own
            cur = con.execute(f"SELECT rid, imp_id, {ROW_SQL} FROM snap.outcomes{where}",
                              params)
            rows = 0
            while batch := cur.fetchmany(BATCH):
                db.executemany("INSERT INTO stories VALUES (?, ?, ?)", batch)
                rows += len(batch)
            db.execute("COMMIT")
        finally:
            db.close()
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest, rows


def prune(snapshot: Path, keep: set[str]) -> None:
    """Remove ``snapshot``'s stories files whose names are not in ``keep`` (the current
    snapshot's and the previous one's: an API that attached the previous snapshot a moment
    ago opens its files next). A file the API has open stays readable through its
    descriptor after the unlink."""
    for f in snapshot.parent.glob(pattern(snapshot)):
        if f.name not in keep:
            f.unlink(missing_ok=True)
