"""The running Dagster webserver, driven over GraphQL as the UI drives it."""

import json
import re
import time
from datetime import UTC, datetime

import dagster as dg
import psutil
import pytest

from helios_pipeline.dagster_client import REPOSITORY, DagsterClient
from helios_pipeline.stack.servers import wait_for
from tests.integration.test_stack_e2e import Stack

pytestmark = pytest.mark.integration


def seed_profiles(client: DagsterClient, location: str, users: int) -> str:
    """``user_profiles`` materialised through the webserver (seed 3); the run id."""
    run_id = client.submit_job_execution(
        "__ASSET_JOB", repository_location_name=location, repository_name=REPOSITORY,
        asset_selection=["user_profiles"],
        run_config={"ops": {"user_profiles": {"config": {"users": users, "seed": 3}}}})
    assert client.wait_for_run(run_id, timeout=180) == dg.DagsterRunStatus.SUCCESS
    return run_id


def test_launch_a_materialisation_over_graphql_and_read_its_metadata(tmp_path):
    stack = Stack(tmp_path, HELIOS_DAGSTER="true")
    tree: list[psutil.Process] = []
    try:
        state = stack.wait_ready()
        client = DagsterClient.from_url(state["endpoints"]["dagster_ui"])
        location = client.wait_for_location()
        run_id = seed_profiles(client, location, users=1500)
        mat = client.latest_materialization(["user_profiles"])
        assert mat["run_id"] == run_id
        assert mat["metadata"]["dagster/row_count"] == 1500
        assert mat["metadata"]["seed"] == 3
        # #9: stopped while Dagster is busy, nothing it started outlives it (its code
        # servers, the run's worker and multiprocessing's resource tracker did)
        busy = client.submit_job_execution(
            "__ASSET_JOB", repository_location_name=location, repository_name=REPOSITORY,
            asset_selection=["user_profiles"],
            run_config={"ops": {"user_profiles": {"config": {"users": 400_000, "seed": 4}}}})
        assert wait_for(lambda: client.get_run_status(busy) == dg.DagsterRunStatus.STARTED, 60)
        tree = psutil.Process(stack.proc.pid).children(recursive=True)
        assert len(tree) > 8  # services, broker, Redis, webserver, daemon, code servers, run
    finally:
        assert stack.stop() == 0
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert [(p.pid, p.name()) for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    for name in ("dagster-webserver", "dagster-daemon"):  # #11: readable, quiet log files
        log = (tmp_path / "logs" / f"{name}.log").read_text()
        assert "\x1b[" not in log, f"ANSI colour codes in {name}.log"
        assert "BetaWarning" not in log, f"beta warnings in {name}.log"


UI_STATE = """
{
  shouldShowNux
  assetNodes {
    assetKey { path }
    isMaterializable isPartitioned
    staleStatus
    staleCauses { reason key { path } }
    partitionStats { numMaterialized numPartitions numFailed }
    assetChecksOrError { ... on AssetChecks { checks { name
      executionForLatestMaterialization { status } } } }
  }
  runsOrError { ... on Runs { results { runId jobName status } } }
}"""
ACTIVE = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}


def settle(client: DagsterClient, quiet_s: float, timeout: float) -> dict:
    """Wait until no run is active and no new run has started for ``quiet_s`` seconds (more
    than one automation tick and sensor interval): then Helios is idle, and must stay so."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    last_change = time.monotonic()
    while True:
        state = client._execute(UI_STATE)
        runs = state["runsOrError"]["results"]
        ids = {r["runId"] for r in runs}
        if ids != seen or any(r["status"] in ACTIVE for r in runs):
            seen, last_change = ids, time.monotonic()
        if time.monotonic() - last_change >= quiet_s:
            return state
        assert time.monotonic() < deadline, (
            f"still starting runs {timeout:.0f} s after the data stopped: "
            f"{[(r['jobName'], r['status']) for r in runs[:10]]}")
        time.sleep(5)


def test_after_a_run_the_dagster_ui_is_green_and_an_idle_stack_starts_no_runs(tmp_path,
                                                                               browser):
    """#11: what a data engineer sees after traffic has been ingested and the day's report
    built: no asset unsynced or missing, partitions that start where the data starts
    (1 of 1 filled, not 334 missing), no failed run or check, no community dialog; and then,
    with nothing arriving, no runs at all."""
    from tests.integration.test_stack_e2e import helios

    today = datetime.now(UTC).strftime("%Y-%m-%d")
    stack = Stack(tmp_path, HELIOS_DAGSTER="true", HELIOS_STATS_REFRESH_S="60",
                  HELIOS_EXPORT_REFRESH_S="60")
    try:
        state = stack.wait_ready()
        ui = state["endpoints"]["dagster_ui"]
        assert (tmp_path / "partitions_start").read_text().strip() == today  # a new home
        client = DagsterClient.from_url(ui)
        location = client.wait_for_location()
        seed_profiles(client, location, users=200)
        load = helios(stack.env, "load", "--rate", "100", "--duration", "3", "--users", "200")
        assert load.returncode == 0, load.stderr
        audit = helios(stack.env, "audit", "--json", "--wait", "60")
        total = json.loads(audit.stdout.strip().splitlines()[-1])["outcomes"]["total"]
        assert total > 0
        assert wait_for(lambda: ((client.latest_materialization(["outcomes"]) or {})
                                 .get("metadata", {}).get("dagster/row_count")) == total, 180)
        run_id = client.submit_job_execution(  # the day's report, as `make demo` ends
            "daily_report", repository_location_name=location, repository_name=REPOSITORY,
            tags={"dagster/partition": today})
        assert client.wait_for_run(run_id, timeout=300) == dg.DagsterRunStatus.SUCCESS

        ui_state = settle(client, quiet_s=90, timeout=300)  # idle: no runs for 90 s
        assert ui_state["shouldShowNux"] is False
        assert [r for r in ui_state["runsOrError"]["results"] if r["status"] != "SUCCESS"] == []
        for node in ui_state["assetNodes"]:
            name = "/".join(node["assetKey"]["path"])
            if not node["isMaterializable"]:
                continue
            if node["isPartitioned"]:
                stats = node["partitionStats"]
                assert stats == {"numMaterialized": 1, "numPartitions": 1, "numFailed": 0}, name
            else:
                assert node["staleStatus"] == "FRESH", (name, node["staleCauses"])
            for check in (node["assetChecksOrError"] or {}).get("checks", []):
                execution = check["executionForLatestMaterialization"]
                assert execution is None or execution["status"] == "SUCCEEDED", (name, check)

        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for group in ("profiles", "streams", "warehouse", "serving", "exports", "reporting"):
            page.goto(f"{ui}/locations/{location}/asset-groups/{group}",
                      wait_until="networkidle")
            page.wait_for_selector("text=Latest event", timeout=60_000)
            page.wait_for_timeout(1_500)  # the community dialog would open after 1 s
            page.screenshot(path=str(tmp_path / f"dagster-{group}.png"))
            text = page.inner_text("body")
            for bad in ("Unsynced", "Never materialized", "Failed", "Join the Dagster community"):
                assert bad not in text, (group, bad)
            filled = re.findall(r"\d+% filled", text)
            assert set(filled) <= {"100% filled"}, (group, filled)
    finally:
        assert stack.stop() == 0


def test_helios_up_with_the_warehouse_on_postgres_accounts_for_every_imp(tmp_path, examples):
    """`helios up --warehouse postgres`: the whole platform, Dagster's ingest writing the
    embedded PostgreSQL; outcomes there equal the audit (nothing missing, nothing doubled)
    and the analyst export made from it has them all."""
    import duckdb
    import psycopg2

    from tests.integration.test_stack_e2e import helios

    stack = Stack(tmp_path, "--warehouse", "postgres", HELIOS_DAGSTER="true")
    try:
        eps = stack.wait_ready()["endpoints"]
        assert eps["warehouse_backend"] == "postgres"
        assert eps["warehouse"].startswith("postgresql://") and eps["warehouse"] != \
            eps["postgres_dsn"]  # its own database beside the serving one
        load = helios(stack.env, "load", "--rate", "200", "--duration", "2", "--corpus",
                      str(examples[0].parent), "--json")
        assert load.returncode == 0, load.stderr
        audit = helios(stack.env, "audit", "--json", "--wait", "60")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        rep = json.loads(audit.stdout)
        assert rep["accepted"] == 400 and rep["missing"] == 0 and rep["duplicated"] == 0

        client = DagsterClient.from_url(eps["dagster_ui"])
        location = client.wait_for_location()
        run_id = client.submit_job_execution(
            "ingest_outcomes", repository_location_name=location, repository_name=REPOSITORY)
        assert client.wait_for_run(run_id, timeout=240) == dg.DagsterRunStatus.SUCCESS
        run_id = client.submit_job_execution(  # the exports (they follow ingest by automation)
            "__ASSET_JOB", repository_location_name=location, repository_name=REPOSITORY,
            asset_selection=["analyst_exports"])
        assert client.wait_for_run(run_id, timeout=240) == dg.DagsterRunStatus.SUCCESS
        with psycopg2.connect(eps["warehouse"]) as pg, pg.cursor() as cur:
            cur.execute("SELECT count(*), count(DISTINCT (rid, imp_id)) FROM outcomes")
            total, keys = cur.fetchone()
            cur.execute("SELECT count(*) FROM bid_requests r WHERE NOT EXISTS (SELECT 1 FROM "
                        "outcomes o WHERE o.rid = r.rid AND o.imp_id = r.imp_id)")
            missing = cur.fetchone()[0]
        pg.close()
        assert total == keys == rep["imps"] and missing == 0
        # the asset's export, and `helios export` pointed at the same PostgreSQL warehouse
        cli_out = tmp_path / "cli-export"
        exported = helios({**stack.env, "HELIOS_WAREHOUSE_BACKEND": "postgres",
                           "HELIOS_WAREHOUSE_DSN": eps["warehouse"]},
                          "export", "--out", str(cli_out))
        assert exported.returncode == 0, exported.stderr
        for out in (tmp_path / "exports", cli_out):
            views = duckdb.connect(str(out / "helios.duckdb"), read_only=True)
            views.execute(f"SET file_search_path = '{out}'")
            assert views.execute("SELECT count(*) FROM outcomes").fetchone()[0] == rep["imps"]
            views.close()
    finally:
        assert stack.stop() == 0
