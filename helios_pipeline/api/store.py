"""The API's view of the serving snapshot: the newest file, switched to as soon as it lands.

``publish`` (helios_pipeline/serving/snapshot.py) renames a new file into place; here each
request asks :meth:`SnapshotStore.current`, which at most once a second compares the file's
inode with the one open and, if it changed, attaches the new one read-only. The previous
file stays attached until a query that started on it has finished (SnapshotStore).

One DuckDB instance for the process's life, each file attached under its own name
(``snap1``, ``snap2``, ...): an instance costs 23 MiB before it reads anything (its
catalog), so an instance per file held two of them whenever a swap had happened — the API's
steady state, since the platform publishes every minute (bench/README.md). The file is
attached through an open descriptor (``/dev/fd/N``), so what is attached is the inode that
was checked, even if another publish renames a newer file into place meanwhile.

A snapshot's stories (every row as one JSON array, by rid and imp id) are in SQLite files
beside it, a base and a tail named in its ``meta`` with the first rid of each
(serving/stories.py), opened read-only and immutable with the snapshot: a story is a
B-tree lookup of 0.011 ms, cheap enough to run on the event loop, where a DuckDB query
costs 0.2–0.8 ms of CPU and a hop to a thread (bench/README.md).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import duckdb
import orjson

from helios_pipeline.api.queries import OUTCOME_COLUMNS, _iso

QUERY_SLOTS = 2
STORIES_CACHE_KIB = 2048  # SQLite's page cache for a snapshot's stories (default size)
API_DUCKDB_THREADS = 1
_SLOTS = threading.BoundedSemaphore(QUERY_SLOTS)


@dataclass
class Snapshot:
    con: duckdb.DuckDBPyConnection  # the store's instance; this file is attached as ``alias``
    alias: str
    inode: int
    as_of: datetime | None
    published_at: datetime
    rows: int
    generation: int = 0  # counts swaps: unlike an inode number, never reused
    as_of_header: str = "none"  # X-Data-As-Of, formatted once
    # None: no stories files (a snapshot of an older layout, or a file is gone); stories
    # and pages are then read from ``outcomes`` (27 columns), slower but the same answers.
    # Else one connection per file, and the first rid each file answers for. A connection
    # is shared by the event loop and the handler threads with no lock of ours: SQLite is
    # built serialized here (``sqlite3.threadsafety == 3``, checked when a file is opened).
    stories: list[sqlite3.Connection] | None = None
    stories_from: list[str] = field(default_factory=list)
    # One cursor per thread, kept: a new cursor + ``USE snap`` cost 0.2 ms per query.
    _local: threading.local = field(default_factory=threading.local, repr=False)
    inflight: int = 0  # queries running on this file now (the store detaches it at 0)
    # Set when the store detached this file: a request that took this snapshot before the
    # swap and only now queries it is answered from the newer one instead of failing.
    successor: Snapshot | None = None
    _busy: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        cur = self.con.cursor()
        cur.execute(f"USE {self.alias}").fetchall()  # a cursor starts in the default catalog
        return cur

    @contextlib.contextmanager
    def _in_use(self) -> Iterator[Snapshot]:
        """This snapshot, counted in ``inflight`` (the store does not detach it meanwhile),
        or, if the store detached it already, its successor."""
        with self._busy:
            newer = self.successor
            if newer is None:
                self.inflight += 1
        if newer is not None:
            with newer._in_use() as snap:
                yield snap
            return
        try:
            yield self
        finally:
            with self._busy:
                self.inflight -= 1

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run one query, at most ``QUERY_SLOTS`` at a time per process: on 2 cores more
        concurrent scans only queue inside DuckDB and multiply its memory; past the slots a
        request waits here instead (bounded latency, never an out-of-memory error)."""
        with self._in_use() as snap:
            cur = getattr(snap._local, "cur", None)
            if cur is None:
                cur = snap._local.cur = snap.cursor()
            with _SLOTS:
                return cur.execute(sql, params or []).fetchall()

    def _stories_of(self, rid: str) -> sqlite3.Connection:
        """The stories file whose range holds ``rid``."""
        assert self.stories is not None
        return self.stories[bisect.bisect_right(self.stories_from, rid) - 1]

    def stories_by_key(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list]:
        """Outcome rows (``OUTCOME_COLUMNS`` by position) from the stories files, by (rid,
        imp_id); keys not found are left out. Empty without stories files."""
        with self._in_use() as snap:
            if snap.stories is None:
                return {}
            found = [snap._stories_of(k[0]).execute(
                "SELECT row FROM stories WHERE rid = ? AND imp_id = ?", k).fetchone()
                for k in keys]
        return {k: orjson.loads(r[0]) for k, r in zip(keys, found, strict=True) if r}

    def story_rows(self, rid: str) -> list:
        """The outcome rows (``OUTCOME_COLUMNS`` by position) of one request, by imp id:
        from the stories files (the B-tree's order is (rid, imp_id)), else from
        ``outcomes``."""
        with self._in_use() as snap:
            if snap.stories is None:
                return snap.wide_story_rows(rid)
            found = snap._stories_of(rid).execute(
                "SELECT row FROM stories WHERE rid = ?", (rid,)).fetchall()
        return [orjson.loads(r[0]) for r in found]

    def page_rows(self, where: str, params: list, order: str, limit: int, offset: int
                  ) -> list:
        """One page of outcome rows (``OUTCOME_COLUMNS`` by position). With stories files,
        in two steps: the page's keys from the few columns the filter and the order need,
        then those rows from the stories files. A 27-column Top-N pinned enough blocks to run
        out of a 32 MB buffer at concurrency 8; this needs a fraction of it, and less CPU
        (bench/README.md)."""
        if self.stories is not None:
            keys = self.query(f"SELECT rid, imp_id FROM outcomes{where} ORDER BY {order}"
                              f" LIMIT ? OFFSET ?", [*params, limit, offset])
            by_key = self.stories_by_key(keys)
            if len(by_key) == len(keys):
                return [by_key[k] for k in keys]
            # a key without its story (the stories of a newer snapshot, swapped in between
            # the two steps): the wide way
        return self.query(f"SELECT {OUTCOME_COLUMNS} FROM outcomes{where} ORDER BY {order} "
                          "LIMIT ? OFFSET ?", [*params, limit, offset])

    def wide_story_rows(self, rid: str) -> list[tuple]:
        return self.query(f"SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE rid = ? "
                          "ORDER BY imp_id", [rid])


class SnapshotStore:
    """The newest snapshot file, attached; the one before it stays attached until
    ``retire_after_s`` after the swap and no query runs on it (a query that started on it
    finishes there), then it is detached: both files' metadata held at once cost 3 MiB more
    at 10 M rows than detaching at once (bench/README.md). A request that took the old
    snapshot before the swap and queries it only after the detach is answered from the new
    one (``Snapshot.successor``), never failed."""

    def __init__(self, path: Path, memory_mb: int = 128, check_every_s: float = 1.0,
                 retire_after_s: float = 1.0) -> None:
        self.path = path
        self.memory_mb = memory_mb
        self.check_every_s = check_every_s
        self.retire_after_s = retire_after_s
        self._swapped_at = 0.0
        self._lock = threading.Lock()
        self._current: Snapshot | None = None
        self._previous: Snapshot | None = None
        self._fds: dict[str, int] = {}  # alias -> the descriptor its file is attached by
        self._stories: dict[str, list[sqlite3.Connection]] = {}  # alias -> stories files
        self._checked = 0.0
        self._generations = 0
        # One DuckDB thread per query, QUERY_SLOTS queries at once: the API's queries are
        # small (roll-ups, two-column lookups), and a second thread per query only added
        # hand-off cost and waited for a core: stats/ 2.98 → 1.46 ms CPU, 26 → 2.1 ms wall
        # on the loaded 2-core machine (bench/README.md).
        self._con = duckdb.connect(":memory:", config={"memory_limit": f"{memory_mb}MB",
                                                       "threads": API_DUCKDB_THREADS})

    def current(self) -> Snapshot | None:
        now = time.monotonic()
        if now - self._checked < self.check_every_s and self._current is not None:
            return self._current
        with self._lock:
            self._checked = now
            try:
                inode = self.path.stat().st_ino
            except FileNotFoundError:
                return self._current
            if self._current is None or inode != self._current.inode:
                self._swap(self._open())
            elif (self._previous is not None
                  and now - self._swapped_at >= self.retire_after_s):
                self._retire(self._previous)
            return self._current

    def _open(self) -> Snapshot:
        alias = f"snap{self._generations + 1}"
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self._con.execute(f"ATTACH '/dev/fd/{fd}' AS {alias} (READ_ONLY)").fetchall()
        except BaseException:
            os.close(fd)
            raise
        self._fds[alias] = fd
        con = self._con.cursor()
        con.execute(f"USE {alias}").fetchall()
        as_of, published_at, rows = con.execute(
            "SELECT as_of, published_at, rows FROM meta").fetchall()[0]
        meta_cols = {r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = ? "
            "AND table_name = 'meta'", [alias]).fetchall()}
        names, froms = (con.execute("SELECT stories, stories_from FROM meta").fetchall()[0]
                        if "stories_from" in meta_cols else ([], []))
        con.close()
        stories = self._open_stories(alias, names)
        return Snapshot(self._con, alias, os.fstat(fd).st_ino, as_of, published_at, rows,
                        as_of_header=_iso(as_of) or "none", stories=stories,
                        stories_from=froms)

    def _open_stories(self, alias: str, names: list[str]) -> list[sqlite3.Connection] | None:
        """The snapshot's stories files, read-only and immutable (never written once named:
        no locks, no journal to check); None unless all are there (then the snapshot is
        read wide)."""
        if sqlite3.threadsafety != 3:  # a build whose connections threads may not share
            return None
        dbs: list[sqlite3.Connection] = []
        try:
            for name in names:
                dbs.append(sqlite3.connect(
                    f"file:{quote(str(self.path.parent / name))}?mode=ro&immutable=1",
                    uri=True, check_same_thread=False))
                dbs[-1].execute(f"PRAGMA cache_size = -{STORIES_CACHE_KIB // len(names)}")
                dbs[-1].execute("SELECT 1 FROM stories LIMIT 1").fetchall()
        except sqlite3.Error:  # not there (or removed meanwhile): read wide
            for db in dbs:
                db.close()
            return None
        if not dbs:
            return None
        self._stories[alias] = dbs
        return dbs

    def _swap(self, snap: Snapshot) -> None:
        self._generations += 1
        snap.generation = self._generations
        if self._previous is not None:  # two swaps within retire_after_s
            with self._previous._busy:
                self._previous.successor = snap
            self._detach(self._previous.alias)
        self._previous, self._current = self._current, snap
        self._swapped_at = time.monotonic()

    def _retire(self, old: Snapshot) -> None:
        """Detach ``old`` unless a query runs on it now (then at a later check)."""
        with old._busy:
            if old.inflight:
                return
            old.successor = self._current
        self._detach(old.alias)
        self._previous = None

    def _detach(self, alias: str) -> None:
        with contextlib.suppress(Exception):
            self._con.execute(f"DETACH {alias}").fetchall()
        fd = self._fds.pop(alias, None)
        if fd is not None:
            os.close(fd)
        for db in self._stories.pop(alias, ()):
            db.close()

    def close(self) -> None:
        with self._lock:
            for alias in list(self._fds):
                self._detach(alias)
            with contextlib.suppress(Exception):
                self._con.close()
            self._current = self._previous = None


class ResponseCache:
    """Encoded answers per snapshot: a snapshot never changes, so an answer computed on it
    stays right until the next one is swapped in (the key holds the snapshot's generation).
    The dashboard's auto-refresh and many readers asking the same page hit it; bounded in
    entries and bytes, least recently used out first.

    An answer that was cheap to compute (under ``cheap_s`` of CPU, such as a request's
    story, 0.5–1.5 ms) is kept only from the second time its path and query are asked (in
    this snapshot or an earlier one): one-off stories would otherwise fill the cache and push
    out what is asked again, for no hit. The doorkeeper remembers the hashes of the last
    ``max_seen`` asks, so a dashboard's calls, asked again at every refresh, are kept from
    their first answer on each new snapshot; an expensive answer (a scan with filters the
    roll-ups do not cover: 3–35 ms) is kept at once."""

    def __init__(self, max_entries: int = 1024, max_bytes: int = 4 << 20,
                 max_entry_bytes: int = 2 << 20, max_seen: int = 8192,
                 cheap_s: float = 0.002) -> None:
        from collections import OrderedDict

        self.max_entries, self.max_bytes, self.max_seen = max_entries, max_bytes, max_seen
        self.max_entry_bytes = min(max_entry_bytes, max_bytes)
        self.cheap_s = cheap_s
        self._d: OrderedDict[tuple, bytes] = OrderedDict()
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            body = self._d.get(key)
            if body is not None:
                self._d.move_to_end(key)
            return body

    def put(self, key: tuple, body: bytes, cost_s: float = 0.0) -> None:
        """Keep ``body`` (``cost_s``: the CPU it took to compute) under ``key``, a tuple
        (snapshot generation, path, query), if the admission rules above let it in."""
        if not self.max_entries or len(body) > self.max_entry_bytes:
            return  # one huge answer must not evict everything else (the dashboard's
            # largest, daily_stats?group_by=site over ~1,000 sites × 7 days, is 1.2 MB: fits)
        asked = hash(key[1:])  # path and query, whichever snapshot
        with self._lock:
            if asked not in self._seen:  # a first ask: remembered
                self._seen[asked] = None
                if len(self._seen) > self.max_seen:
                    self._seen.popitem(last=False)
                if cost_s < self.cheap_s:  # and, if cheap, not kept
                    return
            old = self._d.pop(key, None)
            self._bytes += len(body) - (len(old) if old else 0)
            self._d[key] = body
            while len(self._d) > self.max_entries or self._bytes > self.max_bytes:
                _, dropped = self._d.popitem(last=False)
                self._bytes -= len(dropped)
