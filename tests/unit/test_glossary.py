"""Every warehouse column is described once, and the catalog's column schemas carry it."""

from assets.columns import column_schema
from helios_pipeline.warehouse import tables
from helios_pipeline.warehouse.glossary import COLUMNS


def test_every_column_of_every_table_is_described_and_every_entry_is_a_column():
    used = {name for t in tables.TABLES.values() for name in tables.column_names(t)}
    assert sorted(used - COLUMNS.keys()) == []  # undocumented columns
    assert sorted(COLUMNS.keys() - used) == []  # entries for columns that do not exist
    assert all(len(text) > 3 for text in COLUMNS.values())


def test_column_schemas_carry_the_descriptions():
    schema = column_schema(tables.OutcomeRow)
    by_name = {c.name: c.description for c in schema.columns}
    assert by_name["loss_reason"] == COLUMNS["loss_reason"]
    assert by_name["rid"].startswith(COLUMNS["rid"]) and "primary key" in by_name["rid"]
