"""The one backend-neutral layer under the warehouse: DuckDB (embedded default) or PostgreSQL.

Why: in deployment several Dagster run pods and the API share the warehouse, which one
DuckDB file on one disk cannot do; the embedded default must stay a single file. The ingest,
``outcomes``, ``daily_stats``, offsets and rejects code (ingest.py, stats.py) is written once
against :class:`Warehouse` in SQL both engines run; the few things that differ live here:

* statements: ``?`` parameters (rewritten for psycopg2), rows affected, explicit
  transactions (``BEGIN``/``COMMIT``/``ROLLBACK`` on both);
* parsing messages is DuckDB SQL (transforms.py), run by the ingest's reader thread in an
  in-memory DuckDB of its own; :meth:`Warehouse.prepare` (same thread) turns the typed rows
  into what the backend loads fastest, and :meth:`Warehouse.stage` (the writer, inside the
  ingest's transaction) makes them a relation of the warehouse: on DuckDB the Arrow table
  itself, registered (no copy); on PostgreSQL a CSV file DuckDB wrote (its writer formats
  timestamps several times faster than Arrow's) streamed by ``COPY ... FROM STDIN``
  (psycopg2 ``copy_expert``) into a temporary table — temporary tables are never WAL-logged;
* reading for DuckDB-only consumers (Parquet exports, the serving snapshot, the report):
  :meth:`Warehouse.to_local` copies a table's selected rows into :attr:`Warehouse.local`
  (``COPY ... TO STDOUT``, read by DuckDB's CSV reader); on DuckDB it is a no-op, the tables
  are already there;
* writers: DuckDB allows one writing process; PostgreSQL allows many, so each write
  transaction takes one transaction-scoped advisory lock (:meth:`Warehouse.lock_writers`)
  and writers run one at a time there too, while readers read concurrently. The ingest's
  delete-and-insert of ``outcomes`` rows and its pending tables are only correct serialised.

Keys: on neither backend do the raw tables and ``outcomes`` have a primary key (DuckDB: an
ART index over the history slowed every insert, issue #6; PostgreSQL: a B-tree cost ~40 %
of the ingest); the ingest keeps (rid, imp_id) unique, looking a batch's keys up in its rid
range only, which DuckDB prunes by row-group min/max and PostgreSQL by a BRIN index on rid
(schema.rid_index).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from helios_pipeline.warehouse import tables

BACKENDS = ("duckdb", "postgres")
# any fixed 64-bit number: the advisory lock every PostgreSQL warehouse writer takes
WRITER_LOCK = 0x4E110_5_0001


@dataclass
class Prepared:
    """Typed rows made ready for :meth:`Warehouse.stage` by :meth:`Warehouse.prepare`."""

    rows: int
    data: pa.Table | Path  # DuckDB: the rows; PostgreSQL: the COPY input (CSV)


class Warehouse(ABC):
    """A connection to the warehouse, whichever backend. Not thread-safe (one per task),
    except :meth:`prepare`, which another thread may call."""

    dialect: str
    temp_schema: str  # where temporary tables live
    local: duckdb.DuckDBPyConnection  # where DuckDB-only SQL runs (parsing, exports)

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run one statement (``?`` parameters); its rows ([] when it returns none)."""

    @abstractmethod
    def modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one INSERT/UPDATE/DELETE; how many rows it changed."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    def load(self, table: str, rows: str) -> int:
        """Append the rows of DuckDB query ``rows`` (run on :attr:`local`, in ``table``'s
        column order) to warehouse table ``table``; returns how many."""

    @abstractmethod
    def prepare(self, local: duckdb.DuckDBPyConnection, rows: str, seq: int) -> Prepared:
        """Turn the typed rows of DuckDB query ``rows`` (run on ``local``, a DuckDB connection
        of the calling thread, in the table's column order) into what :meth:`stage` loads.
        Thread-safe: uses nothing of this warehouse connection but its scratch directory;
        ``seq`` keeps the outputs of successive calls apart."""

    @abstractmethod
    def stage(self, prepared: Prepared, table: str, name: str) -> None:
        """Make ``prepared`` rows readable as relation ``name`` (columns of ``table``) in the
        warehouse, inside the caller's transaction, replacing what ``name`` held."""

    @abstractmethod
    def unstage(self, name: str) -> None:
        """Release what :meth:`stage` holds for relation ``name``."""

    @abstractmethod
    def has_table(self, name: str) -> bool: ...

    @abstractmethod
    def has_primary_key(self, name: str) -> bool: ...

    @abstractmethod
    def to_local(self, table: str, where: str | None = None,
                 columns: Sequence[str] | None = None) -> str:
        """Make ``table`` (at least its rows matching ``where``) readable under its own name
        on :attr:`local`; returns that name. (Scalar columns: what exports, the snapshot
        and the report read.)"""

    @abstractmethod
    def close(self) -> None: ...

    # --- shared -------------------------------------------------------------------------
    def begin(self) -> None:
        self.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        self.execute("COMMIT")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    @abstractmethod
    def lock_writers(self) -> None:
        """Inside a write transaction: wait until no other writer holds the warehouse."""

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.execute(sql, params)[0][0]

    def temp(self, name: str, select: str) -> None:
        """(Re)create temporary table ``name`` as ``select``."""
        self.execute(f"DROP TABLE IF EXISTS {self.temp_schema}.{name}")
        self.execute(f"CREATE TEMP TABLE {name} AS {select}")

    def ddl(self, table: type[tables.Table], *, key: bool = True, name: str | None = None,
            replace: bool = False) -> None:
        """Create ``table`` in this dialect (``replace``: drop it first)."""
        if replace:
            self.execute(f"DROP TABLE IF EXISTS {name or table.__table__}")
        self.execute(tables.ddl(table, self.dialect, name=name, key=key))

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class DuckDBBackend(Warehouse):
    """The embedded default: everything runs in the warehouse file's own connection."""

    dialect = "duckdb"
    temp_schema = "temp"

    def __init__(self, con: duckdb.DuckDBPyConnection, owned: bool = False) -> None:
        self.con = self.local = con
        self.owned = owned

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()

    def modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.con.execute(sql, list(params)).fetchall()[0][0]

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.con.executemany(sql, [list(r) for r in rows])

    def load(self, table: str, rows: str) -> int:
        return self.modify(f"INSERT INTO {table} {rows}")

    def prepare(self, local: duckdb.DuckDBPyConnection, rows: str, seq: int) -> Prepared:
        data = local.sql(rows).to_arrow_table()
        return Prepared(data.num_rows, data)

    def stage(self, prepared: Prepared, table: str, name: str) -> None:
        # a view on the Arrow table: the warehouse reads the rows where they are
        self.con.register(name, prepared.data)

    def unstage(self, name: str) -> None:
        self.con.unregister(name)

    def lock_writers(self) -> None:
        """Nothing to do: DuckDB itself lets one process write the file."""

    def has_table(self, name: str) -> bool:
        return self.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND "
                           "database_name = current_database() AND schema_name = "
                           "current_schema()", [name]) > 0

    def has_primary_key(self, name: str) -> bool:
        return self.scalar("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type = "
                           "'PRIMARY KEY' AND table_name = ? AND database_name = "
                           "current_database() AND schema_name = current_schema()", [name]) > 0

    def to_local(self, table: str, where: str | None = None,
                 columns: Sequence[str] | None = None) -> str:
        return table

    def close(self) -> None:
        if self.owned:
            self.con.close()


def _pg_array(col: str) -> str:
    """DuckDB expression: list ``col`` as a PostgreSQL array literal (elements quoted)."""
    quoted = ("list_transform({c}, lambda x: CASE WHEN x IS NULL THEN 'NULL' ELSE '\"' || "
              "replace(replace(CAST(x AS VARCHAR), '\\', '\\\\'), '\"', '\\\"') || '\"' END)")
    return (f"CASE WHEN {col} IS NULL THEN NULL ELSE '{{' || "
            f"array_to_string({quoted.format(c=col)}, ',') || '}}' END AS {col}")


def _write_csv(local: duckdb.DuckDBPyConnection, rows: str, path: Path) -> int:
    """Write the rows of DuckDB query ``rows`` (run on ``local``) to ``path`` as CSV for
    PostgreSQL's ``COPY`` (lists as array literals); how many rows."""
    rel = local.sql(rows)
    if any(str(t).endswith("[]") for t in rel.types):  # lists → PostgreSQL array text
        rel = rel.project(", ".join(
            _pg_array(f'"{c}"') if str(t).endswith("[]") else f'"{c}"'
            for c, t in zip(rel.columns, rel.types, strict=True)))
    view = f"csv_rows_{id(rel):x}"
    local.register(view, rel)
    try:
        return local.execute(f"COPY {view} TO '{path}' (FORMAT csv, HEADER false)"
                             ).fetchall()[0][0]
    finally:
        local.unregister(view)


def _pg_params(sql: str, params: Sequence[Any]) -> tuple[str, Sequence[Any] | None]:
    if not params:
        return sql, None
    return sql.replace("%", "%%").replace("?", "%s"), list(params)


class PostgresBackend(Warehouse):
    """The deployment backend: a psycopg2 connection in autocommit mode with explicit
    transactions (as DuckDB's), session time zone UTC, and an in-memory DuckDB beside it."""

    dialect = "postgres"
    temp_schema = "pg_temp"

    def __init__(self, dsn: str, schema: str | None = None) -> None:
        import psycopg2

        # a batch's temporary tables (50,000 rows ≈ 10 MB each) and its sorts and hash joins
        # fit in memory: PostgreSQL's defaults (temp_buffers 8 MB, work_mem 4 MB) spill them
        self.pg = psycopg2.connect(
            dsn, application_name="helios",
            options="-c TimeZone=UTC -c temp_buffers=128MB -c work_mem=64MB")
        self.pg.autocommit = True
        self.cur = self.pg.cursor()
        if schema:
            self.cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self.cur.execute(f'SET search_path TO "{schema}"')
        self.local = duckdb.connect(":memory:")
        self.local.execute("SET TimeZone = 'UTC'")
        shm = Path("/dev/shm")
        self._scratch = Path(tempfile.mkdtemp(prefix="helios-pg-",
                                              dir=shm if shm.is_dir() else None))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        self.cur.execute(*_pg_params(sql, params))
        return self.cur.fetchall() if self.cur.description is not None else []

    def modify(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.cur.execute(*_pg_params(sql, params))
        return self.cur.rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self.cur.executemany(sql.replace("%", "%%").replace("?", "%s"),
                                 [list(r) for r in rows])

    def lock_writers(self) -> None:
        self.execute("SELECT pg_advisory_xact_lock(?)", [WRITER_LOCK])

    def load(self, table: str, rows: str) -> int:
        """DuckDB writes the rows as CSV (its writer is parallel, Arrow's formats timestamps
        several times slower) to a scratch file in memory (/dev/shm where there is one),
        which ``COPY ... FROM STDIN`` streams into ``table``."""
        path = self._scratch / "rows.csv"
        n = _write_csv(self.local, rows, path)
        self._copy_in(table, path, n)
        return n

    def prepare(self, local: duckdb.DuckDBPyConnection, rows: str, seq: int) -> Prepared:
        path = self._scratch / f"prepared-{seq}.csv"
        n = _write_csv(local, rows, path)
        if not n:
            path.unlink(missing_ok=True)
        return Prepared(n, path)

    def stage(self, prepared: Prepared, table: str, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS pg_temp.{name}")
        self.execute(tables.ddl(tables.TABLES[table], self.dialect, name=name, key=False,
                                temp=True))
        assert isinstance(prepared.data, Path)
        self._copy_in(name, prepared.data, prepared.rows)

    def unstage(self, name: str) -> None:
        """Nothing: the temporary table is replaced by the next :meth:`stage`."""

    def _copy_in(self, table: str, path: Path, rows: int) -> None:
        try:
            if rows:
                with path.open("rb") as f:
                    self.cur.copy_expert(f"COPY {table} FROM STDIN (FORMAT csv)", f,
                                         size=1 << 20)
        finally:
            path.unlink(missing_ok=True)

    def has_table(self, name: str) -> bool:
        return self.scalar("SELECT to_regclass(?) IS NOT NULL", [name])

    def has_primary_key(self, name: str) -> bool:
        return self.scalar("SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND "
                           "conrelid = to_regclass(?)", [name]) > 0

    def to_local(self, table: str, where: str | None = None,
                 columns: Sequence[str] | None = None) -> str:
        row = tables.TABLES[table]
        cols = [c for c in tables.columns(row) if columns is None or c[0] in columns]
        names = ", ".join(tables.column(c[0]) for c in cols)
        self.local.execute(f"DROP TABLE IF EXISTS {table}")
        self.local.execute(f"CREATE TABLE {table} ("
                           + ", ".join(f"{tables.column(n)} {t}" for n, t, _ in cols) + ")")
        if not self.has_table(table):
            return table  # nothing in the warehouse yet: an empty table
        with tempfile.TemporaryDirectory(prefix="helios-pg-") as tmp:
            path = Path(tmp) / f"{table}.csv"
            with path.open("wb") as f:
                self.cur.copy_expert(f"COPY (SELECT {names} FROM {table}"
                                     f"{f' WHERE {where}' if where else ''}) "
                                     "TO STDOUT (FORMAT csv)", f)
            if path.stat().st_size:
                self.local.execute(f"COPY {table} FROM '{path}' (FORMAT csv, HEADER false, "
                                   "DELIMITER ',', QUOTE '\"', ESCAPE '\"', "
                                   "ALLOW_QUOTED_NULLS false)")
        return table

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.local.close()
        shutil.rmtree(self._scratch, ignore_errors=True)
        self.pg.close()


def as_warehouse(con: duckdb.DuckDBPyConnection | Warehouse) -> Warehouse:
    """Accept what callers hold: a Warehouse, or a DuckDB connection (wrapped, not owned)."""
    return con if isinstance(con, Warehouse) else DuckDBBackend(con)


def check_backend(backend: str, dsn: str | None) -> None:
    """One-line errors naming the setting and the fix."""
    if backend not in BACKENDS:
        raise ValueError(f"HELIOS_WAREHOUSE_BACKEND={backend!r} is not a warehouse backend: "
                         f"use {' or '.join(BACKENDS)}")
    if backend == "postgres" and not dsn:
        raise ValueError("HELIOS_WAREHOUSE_BACKEND=postgres needs HELIOS_WAREHOUSE_DSN: set it "
                         "to the PostgreSQL URI (postgresql://user:pass@host/db)")


@contextlib.contextmanager
def open_warehouse(backend: str, path: str | os.PathLike | None = None,
                   dsn: str | None = None, read_only: bool = False,
                   schema: str | None = None) -> Iterator[Warehouse]:
    """A short-lived warehouse connection of ``backend`` (``duckdb``: the file at ``path``;
    ``postgres``: ``dsn``, optionally in ``schema``)."""
    check_backend(backend, dsn)
    db: Warehouse
    if backend == "postgres":
        db = PostgresBackend(str(dsn), schema)
    else:
        db = DuckDBBackend(duckdb.connect(str(path), read_only=read_only), owned=True)
    try:
        yield db
    finally:
        db.close()
