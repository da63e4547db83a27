"""Dagster column schemas from the typed table rows (helios_pipeline/warehouse/tables.py):
the asset catalog is the data dictionary, and it cannot drift from the DDL; and the
freshness every table materialisation reports."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg

from helios_pipeline.warehouse import tables
from helios_pipeline.warehouse.glossary import COLUMNS


def column_schema(row: type[tables.Table]) -> dg.TableSchema:
    key = set(row.__key__)
    return dg.TableSchema(columns=[
        dg.TableColumn(name, sql, description=COLUMNS[name] + (" (primary key)" if name in key
                                                               else ""),
                       constraints=dg.TableColumnConstraints(nullable=nullable,
                                                             unique=False))
        for name, sql, nullable in tables.columns(row)
    ])


def schema_metadata(row: type[tables.Table]) -> dict:
    """``metadata=`` for an asset definition: its table name and column schema."""
    return {"dagster/column_schema": column_schema(row), "dagster/table_name": row.__table__}


def freshness(newest: datetime | None) -> dict:
    """Materialisation metadata saying how fresh the data is: the newest row's event time
    and how far it is behind the wall clock when the materialisation was recorded."""
    if newest is None:
        return {"newest_row_at": "no rows"}
    if newest.tzinfo is None:  # DuckDB TIMESTAMPTZ comes back aware; be safe with naive
        newest = newest.replace(tzinfo=UTC)
    lag = max(0.0, (datetime.now(UTC) - newest).total_seconds())
    return {"newest_row_at": dg.MetadataValue.timestamp(newest),
            "data_lag_seconds": round(lag, 1)}
