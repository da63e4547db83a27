"""A small client for the Dagster webserver's GraphQL API: launch runs and wait for them.

The demo and the end-to-end tests launch runs through the running webserver, exactly as
the UI does, so they queue, run in the daemon's run launcher and appear in the UI.
"""

from __future__ import annotations

import time

import httpx

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}"""
RUN = """query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"""
LOCATIONS = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename } } } } }"""
ASSET = """
query Asset($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset { assetMaterializations(limit: 1) {
      runId
      metadataEntries { label ... on IntMetadataEntry { intValue } }
    } }
  }
}"""


class DagsterError(RuntimeError):
    pass


class DagsterClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def query(self, query: str, variables: dict | None = None) -> dict:
        resp = httpx.post(f"{self.url}/graphql",
                          json={"query": query, "variables": variables or {}}, timeout=30)
        resp.raise_for_status()
        body = resp.json()
        if "errors" in body:
            raise DagsterError(str(body["errors"])[:500])
        return body["data"]

    def wait_for_location(self, timeout: float = 120) -> str:
        """The name of the loaded code location (it loads after the server starts)."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.query(LOCATIONS)["workspaceOrError"]["locationEntries"]
            for e in entries:
                if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation":
                    return e["name"]
            if time.monotonic() > deadline:
                raise DagsterError(f"code location did not load: {entries}")
            time.sleep(1)

    def launch(self, location: str, job: str, *, assets: list[list[str]] | None = None,
               run_config: dict | None = None, tags: dict[str, str] | None = None) -> str:
        selector: dict = {"repositoryLocationName": location,
                          "repositoryName": "__repository__", "jobName": job}
        if assets:
            selector["assetSelection"] = [{"path": p} for p in assets]
        params = {"selector": selector, "runConfigData": run_config or {},
                  "executionMetadata": {"tags": [{"key": k, "value": v}
                                                 for k, v in (tags or {}).items()]}}
        got = self.query(LAUNCH, {"params": params})["launchRun"]
        if got["__typename"] != "LaunchRunSuccess":
            raise DagsterError(f"launch of {job} failed: {got}")
        return got["run"]["runId"]

    def wait(self, run_id: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.query(RUN, {"id": run_id})["runOrError"]["status"]
            if status in ("SUCCESS", "FAILURE", "CANCELED"):
                return status
            time.sleep(1)
        raise DagsterError(f"run {run_id} did not finish within {timeout:.0f} s")

    def latest_materialization(self, path: list[str]) -> dict | None:
        mats = self.query(ASSET, {"path": path})["assetOrError"].get("assetMaterializations")
        if not mats:
            return None
        m = mats[0]
        return {"run_id": m["runId"],
                "metadata": {e["label"]: e.get("intValue") for e in m["metadataEntries"]}}
