"""The embedded Dagster instance: SQLite storage under $HELIOS_HOME/dagster.

Same run coordinator and pool limit as the deployment's ``dagster.yaml``; only storage
differs (SQLite here, PostgreSQL there).
"""

from __future__ import annotations

from pathlib import Path

import helios_pipeline

EMBEDDED_INSTANCE = """\
# Written by `helios up`: the embedded default's Dagster instance (SQLite storage here).
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: 4
  pools:
    default_limit: 1  # duckdb_writer: DuckDB allows one writing process
telemetry:
  enabled: false
"""


def workspace_file() -> Path:
    return Path(helios_pipeline.__file__).resolve().parents[1] / "workspace.yaml"


def write_embedded_instance(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    path.write_text(EMBEDDED_INSTANCE)
    return path
