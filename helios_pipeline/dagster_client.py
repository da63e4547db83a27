"""The Dagster webserver's GraphQL API as the demo and the end-to-end tests drive it.

They launch runs through the running webserver, exactly as the UI does, so they queue, run
in the daemon's run launcher and appear in the UI.

What the library covers: ``DagsterClient`` is a ``dagster_graphql.DagsterGraphQLClient``,
whose ``submit_job_execution`` launches a run (a job, an asset selection, run config, tags)
and whose ``get_run_status`` reads a run's status; callers use those calls as they are.

What remains ours (the library has no call for it), a few lines each:

- ``from_url``: the client from the webserver URL that ``stack.json`` records.
- ``wait_for_location``: the code location loads some seconds after the webserver answers;
  returns its name once loaded.
- ``wait_for_run``: polls ``get_run_status`` until the run finishes, or raises
  ``DagsterError`` naming the run and the timeout.
- ``latest_materialization``: an asset's latest materialisation (run id, int metadata).

The two queries of our own go through the library's transport (``_execute``), so every
call shares its connection handling and errors (``DagsterGraphQLClientError``).
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import dagster as dg
from dagster_graphql import DagsterGraphQLClient

REPOSITORY = "__repository__"  # the repository name Dagster gives a code location's Definitions
FINISHED = frozenset({dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                      dg.DagsterRunStatus.CANCELED})
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


class DagsterClient(DagsterGraphQLClient):
    """``DagsterGraphQLClient`` plus the waits and the one read it lacks (module docstring)."""

    @classmethod
    def from_url(cls, url: str, timeout: int = 30) -> DagsterClient:
        """``url``: the webserver's, e.g. ``http://127.0.0.1:3000``."""
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"not a Dagster webserver URL: {url!r}")
        return cls(parts.hostname, port_number=parts.port, use_https=parts.scheme == "https",
                   path_prefix=parts.path.rstrip("/"), timeout=timeout)

    def wait_for_location(self, timeout: float = 120) -> str:
        """The name of the loaded code location (it loads after the server starts)."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self._execute(LOCATIONS)["workspaceOrError"]["locationEntries"]
            for e in entries:
                if (e["locationOrLoadError"] or {}).get("__typename") == "RepositoryLocation":
                    return e["name"]
            if time.monotonic() > deadline:
                raise DagsterError(f"code location did not load within {timeout:.0f} s: "
                                   f"{entries}")
            time.sleep(1)

    def wait_for_run(self, run_id: str, timeout: float = 300,
                     poll: float = 1.0) -> dg.DagsterRunStatus:
        """The run's final status (SUCCESS, FAILURE or CANCELED), polled with
        ``get_run_status``; ``DagsterError`` if it has not finished within ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.get_run_status(run_id)
            if status in FINISHED:
                return status
            if time.monotonic() >= deadline:
                raise DagsterError(f"run {run_id} did not finish within {timeout:.0f} s "
                                   f"(still {status.value}); see the Dagster UI")
            time.sleep(poll)

    def latest_materialization(self, path: list[str]) -> dict | None:
        mats = self._execute(ASSET, {"path": path})["assetOrError"].get("assetMaterializations")
        if not mats:
            return None
        m = mats[0]
        return {"run_id": m["runId"],
                "metadata": {e["label"]: e.get("intValue") for e in m["metadataEntries"]}}
