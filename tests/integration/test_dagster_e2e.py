"""The running Dagster webserver, driven over GraphQL as the UI drives it."""

import pytest

from helios_pipeline.dagster_client import DagsterClient
from tests.integration.test_stack_e2e import Stack

pytestmark = pytest.mark.integration


def test_launch_a_materialisation_over_graphql_and_read_its_metadata(tmp_path):
    stack = Stack(tmp_path, HELIOS_DAGSTER="true")
    try:
        state = stack.wait_ready()
        client = DagsterClient(state["endpoints"]["dagster_ui"])
        location = client.wait_for_location()
        run_id = client.launch(
            location, "__ASSET_JOB", assets=[["user_profiles"]],
            run_config={"ops": {"user_profiles": {"config": {"users": 1500, "seed": 3}}}})
        assert client.wait(run_id, timeout=180) == "SUCCESS"
        mat = client.latest_materialization(["user_profiles"])
        assert mat["run_id"] == run_id
        assert mat["metadata"]["dagster/row_count"] == 1500
        assert mat["metadata"]["seed"] == 3
    finally:
        assert stack.stop() == 0
