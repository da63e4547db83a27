"""Open the warehouse's DuckDB file, waiting out another process's lock on it.

DuckDB lets one process at a time hold a database file for writing; while a Dagster run
does, a connect from any other process (a reader too) fails at once with an IOException
("Could not set lock on file"). The runs hold it for seconds, so the Dagster resource, the
audit and the tests wait for it, bounded, here in one place.
"""

from __future__ import annotations

import time

import duckdb


def connect_waiting(path: str, *, read_only: bool, wait_s: float,
                    pause_s: float = 0.2) -> duckdb.DuckDBPyConnection:
    """A connection to ``path``; an IOException after ``wait_s`` of retries is raised."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause_s)
