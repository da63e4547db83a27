"""Dagster column schemas from the typed table rows (helios_pipeline/warehouse/tables.py):
the asset catalog is the data dictionary, and it cannot drift from the DDL."""

from __future__ import annotations

import dagster as dg

from helios_pipeline.warehouse import tables


def column_schema(row: type[tables.Table]) -> dg.TableSchema:
    key = set(row.__key__)
    return dg.TableSchema(columns=[
        dg.TableColumn(name, sql, description="primary key" if name in key else None,
                       constraints=dg.TableColumnConstraints(nullable=nullable,
                                                             unique=False))
        for name, sql, nullable in tables.columns(row)
    ])


def schema_metadata(row: type[tables.Table]) -> dict:
    """``metadata=`` for an asset definition: its table name and column schema."""
    return {"dagster/column_schema": column_schema(row), "dagster/table_name": row.__table__}
