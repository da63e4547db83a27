"""The running Dagster webserver, driven over GraphQL as the UI drives it."""

import time

import httpx
import pytest

from tests.integration.test_stack_e2e import Stack

pytestmark = pytest.mark.integration

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN = """query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
ASSET = """
query Asset($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) {
      runId
      metadataEntries { label ... on IntMetadataEntry { intValue } }
    } }
  }
}"""
LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename } } } } }"""


def gql(url: str, query: str, variables: dict | None = None) -> dict:
    resp = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}},
                      timeout=30)
    resp.raise_for_status()
    body = resp.json()
    assert "errors" not in body, body
    return body["data"]


def test_launch_a_materialisation_over_graphql_and_read_its_metadata(tmp_path):
    stack = Stack(tmp_path, HELIOS_DAGSTER="true")
    try:
        state = stack.wait_ready()
        ui = state["endpoints"]["dagster_ui"]
        deadline = time.monotonic() + 90
        while True:  # the code location loads in the background after the server is up
            entries = gql(ui, LOCATIONS)["workspaceOrError"]["locationEntries"]
            loaded = [e for e in entries
                      if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation"]
            if loaded or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert loaded, entries
        params = {
            "selector": {"repositoryLocationName": loaded[0]["name"],
                         "repositoryName": "__repository__", "jobName": "__ASSET_JOB",
                         "assetSelection": [{"path": ["user_profiles"]}]},
            "runConfigData": {"ops": {"user_profiles": {"config": {"users": 1500, "seed": 3}}}},
        }
        launched = gql(ui, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]
        status = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = gql(ui, RUN, {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                break
            time.sleep(1)
        assert status == "SUCCESS", (status, (tmp_path / "logs").iterdir())
        mats = gql(ui, ASSET, {"path": ["user_profiles"]})["assetOrError"][
            "assetMaterializations"]
        assert mats[0]["runId"] == run_id
        meta = {e["label"]: e.get("intValue") for e in mats[0]["metadataEntries"]}
        assert meta["dagster/row_count"] == 1500
        assert meta["seed"] == 3
    finally:
        assert stack.stop() == 0
