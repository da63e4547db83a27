"""The embedded Dagster instance: SQLite storage under $HELIOS_HOME/dagster.

``SHARED_INSTANCE`` is the one definition of everything but storage (run coordinator,
run and pool concurrency, telemetry). The embedded instance is ``SHARED_INSTANCE`` plus
SQLite storage; the deployment's ``dagster.yaml`` (repository root, mounted by Helm) is
``SHARED_INSTANCE`` plus PostgreSQL storage, and tests/unit/test_dagster_instance.py fails
if the two differ in anything but ``storage``. It is a Python dict, not a read of
``dagster.yaml``, so an installed wheel (which carries no root files) needs nothing else.
"""

from __future__ import annotations

from pathlib import Path

import yaml

SHARED_INSTANCE: dict = {
    "run_coordinator": {
        "module": "dagster.core.run_coordinator",
        "class": "QueuedRunCoordinator",
    },
    "concurrency": {
        # 4 for both (it was 4 embedded, 8 deployed): every warehouse asset is in the
        # `duckdb_writer` pool at one slot, so runs past the first mostly wait for it, and
        # each run is its own Python process (default run launcher) of ~200 MB. 4 fits the
        # 2-core default machine and still lets non-writing runs (reports, exports, topic
        # observation) go alongside a writer.
        "runs": {"max_concurrent_runs": 4},
        "pools": {"default_limit": 1},  # duckdb_writer: DuckDB allows one writing process
    },
    # A run worker killed mid-run (kill -9, OOM) must not block ingest forever. The code
    # server that started it notices within a second and marks the run failed, but the
    # `duckdb_writer` pool slot its step held stays claimed until something frees it: the
    # monitoring daemon (enabled here) frees the slots of runs that ended
    # `free_slots_after_run_end_seconds` ago, so the sensor's next run can write. It also
    # fails runs stuck starting (`start_timeout_seconds`) and any run still going after
    # `max_runtime_seconds` (a code server killed with its run leaves the run STARTED:
    # without this it would hold the slot forever). tests/integration/test_faults.py
    # kills an ingest run mid-batch and checks the next one completes.
    "run_monitoring": {
        "enabled": True,
        "poll_interval_seconds": 5,
        "free_slots_after_run_end_seconds": 5,
        "start_timeout_seconds": 180,
        "max_runtime_seconds": 7200,
    },
    "telemetry": {"enabled": False},
    # no "Join the Dagster community" dialog on a first visit of the UI (#11)
    "nux": {"enabled": False},
}

HEADER = "# Written by `helios up`: the embedded default's Dagster instance (SQLite storage).\n"


def embedded_instance(dagster_home: Path) -> dict:
    """``SHARED_INSTANCE`` with SQLite storage under ``dagster_home``.

    ``base_dir`` = DAGSTER_HOME keeps the layout of Dagster's default (``history/``,
    ``schedules/``), so an existing $HELIOS_HOME/dagster keeps its run history.
    """
    return {"storage": {"sqlite": {"base_dir": str(dagster_home)}}, **SHARED_INSTANCE}


# The code location, as the root workspace.yaml says it (a test keeps the two equal). An
# installed wheel has no root files, so `helios up` writes this into DAGSTER_HOME.
WORKSPACE: dict = {"load_from": [{"python_module": {"module_name": "helios_pipeline.definitions"}}]}


def write_workspace(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "workspace.yaml"
    path.write_text("# Written by `helios up` (same as the repository's workspace.yaml).\n"
                    + yaml.safe_dump(WORKSPACE, sort_keys=False))
    return path


def write_embedded_instance(dagster_home: Path) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    path.write_text(HEADER + yaml.safe_dump(embedded_instance(dagster_home),
                                            sort_keys=False))
    return path
