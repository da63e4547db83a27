"""The embedded Dagster instance and the deployment's `dagster.yaml` differ only in storage."""

import dagster as dg
import yaml

from helios_pipeline.stack.dagster_instance import (
    SHARED_INSTANCE,
    WORKSPACE,
    embedded_instance,
    write_embedded_instance,
    write_workspace,
)
from tests.conftest import REPO


def _without_storage(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "storage"}


def test_embedded_and_deployment_instances_differ_only_in_storage(tmp_path):
    deployed = yaml.safe_load((REPO / "dagster.yaml").read_text())
    written = yaml.safe_load(write_embedded_instance(tmp_path).read_text())
    assert written == embedded_instance(tmp_path)
    assert _without_storage(deployed) == SHARED_INSTANCE == _without_storage(written)
    assert list(deployed["storage"]) == ["postgres"]
    assert written["storage"] == {"sqlite": {"base_dir": str(tmp_path)}}


def test_embedded_instance_loads_with_sqlite_storage_and_the_shared_limits(tmp_path):
    write_embedded_instance(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        limit = SHARED_INSTANCE["concurrency"]["runs"]["max_concurrent_runs"]
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == limit
        assert concurrency.pool_config.default_pool_limit == 1
    # Dagster's default SQLite layout under DAGSTER_HOME (existing run history stays put)
    assert (tmp_path / "history" / "runs.db").exists()


def test_written_workspace_is_the_repository_workspace(tmp_path):
    """`helios up` from a wheel (no root files) loads the same code location."""
    root = yaml.safe_load((REPO / "workspace.yaml").read_text())
    assert yaml.safe_load(write_workspace(tmp_path).read_text()) == root == WORKSPACE
