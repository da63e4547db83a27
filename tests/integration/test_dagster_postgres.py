"""The deployment instance (`dagster.yaml`, dagster-postgres) on a real PostgreSQL."""

import dagster as dg
import pytest
import yaml

from assets.profiles import user_profiles
from helios_pipeline.resources import DuckDBWarehouse, RedisResource
from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_materialisation_runs_with_dagster_yaml_storage_in_postgres(
    pg_server, tmp_path, monkeypatch, redis_server
):
    server, socket_dir = pg_server
    server.psql("DROP DATABASE IF EXISTS dagster;")
    server.psql("CREATE DATABASE dagster;")
    home = tmp_path / "dagster_home"
    home.mkdir()
    # the file deployment uses, plus one transport detail: pgserver listens on a Unix
    # socket only, which libpq takes from a `host` query parameter
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    config["storage"]["postgres"]["postgres_db"]["params"] = {"host": str(socket_dir)}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_PG_USERNAME", "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused-over-the-local-socket")
    monkeypatch.setenv("DAGSTER_PG_HOST", "localhost")
    monkeypatch.setenv("DAGSTER_PG_DB", "dagster")
    monkeypatch.setenv("DAGSTER_PG_PORT", "5432")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        res = dg.materialize(
            [user_profiles], instance=instance,
            resources={"warehouse": DuckDBWarehouse(path=str(tmp_path / "wh.duckdb")),
                       "redis": RedisResource(url=f"redis://127.0.0.1:{redis_server.port}/1")},
            run_config={"ops": {"user_profiles": {"config": {"users": 50}}}},
        )
        assert res.success
        runs = instance.get_runs()
        assert [r.run_id for r in runs] == [res.run_id]
        mat = instance.get_latest_materialization_event(dg.AssetKey("user_profiles"))
        assert mat.asset_materialization.metadata["dagster/row_count"].value == 50
    rows = server.psql("\\c dagster\nSELECT run_id FROM runs;")  # straight from Postgres
    assert res.run_id in rows
