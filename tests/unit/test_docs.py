"""Docs stay true: every setting is documented, every CLI command is in the README."""

from pathlib import Path

from helios_pipeline.cli import app
from ingest_services.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented_in_operations_md():
    doc = (REPO / "docs" / "operations.md").read_text()
    missing = [f"HELIOS_{name.upper()}" for name in Settings.model_fields
               if f"HELIOS_{name.upper()}" not in doc]
    assert missing == []


def test_every_cli_command_is_in_the_readme():
    readme = (REPO / "README.md").read_text()
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    missing = [c for c in commands if f"helios {c}" not in readme]
    assert missing == []
