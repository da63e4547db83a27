"""The running Dagster webserver, driven over GraphQL as the UI drives it."""

import dagster as dg
import pytest

from helios_pipeline.dagster_client import REPOSITORY, DagsterClient
from tests.integration.test_stack_e2e import Stack

pytestmark = pytest.mark.integration


def test_launch_a_materialisation_over_graphql_and_read_its_metadata(tmp_path):
    stack = Stack(tmp_path, HELIOS_DAGSTER="true")
    try:
        state = stack.wait_ready()
        client = DagsterClient.from_url(state["endpoints"]["dagster_ui"])
        location = client.wait_for_location()
        run_id = client.submit_job_execution(
            "__ASSET_JOB", repository_location_name=location, repository_name=REPOSITORY,
            asset_selection=["user_profiles"],
            run_config={"ops": {"user_profiles": {"config": {"users": 1500, "seed": 3}}}})
        assert client.wait_for_run(run_id, timeout=180) == dg.DagsterRunStatus.SUCCESS
        mat = client.latest_materialization(["user_profiles"])
        assert mat["run_id"] == run_id
        assert mat["metadata"]["dagster/row_count"] == 1500
        assert mat["metadata"]["seed"] == 3
    finally:
        assert stack.stop() == 0
    for name in ("dagster-webserver", "dagster-daemon"):  # #11: readable, quiet log files
        log = (tmp_path / "logs" / f"{name}.log").read_text()
        assert "\x1b[" not in log, f"ANSI colour codes in {name}.log"
        assert "BetaWarning" not in log, f"beta warnings in {name}.log"
