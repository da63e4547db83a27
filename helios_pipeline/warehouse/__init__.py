"""The warehouse: raw tables, ``outcomes``, ``daily_stats`` and ingest offsets.

DuckDB is the embedded default (one writer at a time, short-lived connections); the SQL
is kept portable so a PostgreSQL backend can serve the same tables in deployment.
"""
