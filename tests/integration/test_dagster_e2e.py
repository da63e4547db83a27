"""The running Dagster webserver, driven over GraphQL as the UI drives it."""

import json

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
