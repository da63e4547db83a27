"""DagsterClient: the library's launch and status calls, plus our waits (no server)."""

from types import SimpleNamespace

import dagster as dg
import pytest

from helios_pipeline import dagster_client
from helios_pipeline.dagster_client import REPOSITORY, DagsterClient, DagsterError


def test_from_url_targets_the_webserver_graphql_endpoint():
    assert DagsterClient.from_url("http://127.0.0.1:3123")._url == "http://127.0.0.1:3123/graphql"
    assert DagsterClient.from_url("https://dagster.example/ui/")._url == (
        "https://dagster.example/ui/graphql")
    with pytest.raises(ValueError, match="not a Dagster webserver URL"):
        DagsterClient.from_url("127.0.0.1:3000")


def test_submit_sends_asset_selection_run_config_and_tags(monkeypatch):
    client = DagsterClient.from_url("http://127.0.0.1:3123")
    sent = []

    def execute(query, variables=None):
        sent.append(variables)
        return {"launchPipelineExecution": {"__typename": "LaunchRunSuccess",
                                            "run": {"runId": "r1"}}}

    monkeypatch.setattr(client, "_execute", execute)
    run_id = client.submit_job_execution(
        "__ASSET_JOB", repository_location_name="loc", repository_name=REPOSITORY,
        asset_selection=["user_profiles"], run_config={"ops": {"x": {"config": {"n": 1}}}},
        tags={"dagster/partition": "2026-01-02"})
    assert run_id == "r1"
    params = sent[0]["executionParams"]
    assert params["selector"]["repositoryLocationName"] == "loc"
    assert params["selector"]["pipelineName"] == "__ASSET_JOB"
    assert params["selector"]["assetSelection"] == [{"path": ["user_profiles"]}]
    assert params["runConfigData"] == {"ops": {"x": {"config": {"n": 1}}}}
    assert params["executionMetadata"] == {
        "tags": [{"key": "dagster/partition", "value": "2026-01-02"}]}


def test_wait_for_run_polls_until_finished(monkeypatch):
    client = DagsterClient.from_url("http://127.0.0.1:3123")
    statuses = iter([dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTED,
                     dg.DagsterRunStatus.FAILURE])
    monkeypatch.setattr(client, "get_run_status", lambda run_id: next(statuses))
    assert client.wait_for_run("r1", poll=0) == dg.DagsterRunStatus.FAILURE


def test_wait_for_run_times_out_with_a_clear_error(monkeypatch):
    client = DagsterClient.from_url("http://127.0.0.1:3123")
    polls = []
    monkeypatch.setattr(client, "get_run_status",
                        lambda run_id: polls.append(run_id) or dg.DagsterRunStatus.STARTED)
    clock = iter(range(0, 1000, 10))  # each reading 10 s later
    monkeypatch.setattr(dagster_client, "time", SimpleNamespace(
        monotonic=lambda: next(clock), sleep=lambda s: None))
    with pytest.raises(DagsterError, match=r"run r1 did not finish within 30 s \(still STARTED\)"):
        client.wait_for_run("r1", timeout=30)
    assert len(polls) == 3  # at 10, 20 and 30 s (the deadline) after the start
