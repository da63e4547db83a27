"""Dagster assets, checks, sensor and schedules on real Tansu, Redis and DuckDB."""

import multiprocessing
import os
import random
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import pytest

from assets.checks import (
    daily_stats_rates_in_range,
    daily_stats_reconcile,
    outcomes_account_for_every_imp,
    outcomes_prices_valid,
    outcomes_unique_keys,
)
from assets.exports import analyst_exports
from assets.ingest import raw_auction_outcomes, raw_bid_requests, raw_bid_responses
from assets.profiles import user_profiles
from assets.report import daily_win_rate_report
from assets.warehouse import daily_stats, outcomes
from helios_pipeline.definitions import defs
from helios_pipeline.jobs import daily_report_schedule
from helios_pipeline.resources import (
    DuckDBWarehouse,
    KafkaResource,
    PathsResource,
    RedisResource,
)
from helios_pipeline.synth import make_request
from helios_pipeline.warehouse.ingest import ingest_topic
from ingest_services.profiles import store
from ingest_services.profiles.seed import generate, user_id
from sensors.outcome_topic import outcome_topic_sensor
from tests.integration.conftest import SEED_USERS, WarehouseSpec, produce
from tests.integration.test_pipeline import auctioneer, bidder, envelopes, running

pytestmark = pytest.mark.integration
RAW = [raw_bid_requests, raw_bid_responses, raw_auction_outcomes]


def resources(settings, db: Path, warehouse: WarehouseSpec | None = None) -> dict:
    """``warehouse``: a backend of ``warehouse_backend`` (else the DuckDB file ``db``)."""
    return {
        "kafka": KafkaResource(bootstrap_servers=settings.kafka_bootstrap,
                               topic_requests=settings.topic_requests,
                               topic_responses=settings.topic_responses,
                               topic_outcomes=settings.topic_outcomes),
        "redis": RedisResource(url=settings.redis_url),
        "warehouse": warehouse.resource() if warehouse else DuckDBWarehouse(path=str(db)),
        "paths": PathsResource(reports_dir=str(db.parent / "reports"),
                               exports_dir=str(db.parent / "exports")),
    }


def run_traffic(settings, examples, n_synthetic: int = 300) -> int:
    """Examples + synthetic requests through the real bidder and auctioneer; returns imps."""
    rng = random.Random(2)
    raws = [f.read_bytes() for f in examples]
    raws += [orjson.dumps(make_request(rng, f"s{i}", SEED_USERS)) for i in range(n_synthetic)]
    reqs = envelopes(raws)
    produce(settings, settings.topic_requests, [(rid, v) for rid, v, _ in reqs])
    imps = sum(len(i) for _, _, i in reqs)
    from tests.integration.conftest import read_all

    with running(bidder(settings), auctioneer(settings)):
        read_all(settings, settings.topic_outcomes, expect=imps, timeout=90)
    return imps


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def q(db: Path, sql: str):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_definitions_load_with_every_asset_check_sensor_and_schedule():
    dg.Definitions.validate_loadable(defs)  # what `dagster dev` and the webserver do
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {
        "ingest_outcomes", "refresh_daily_stats", "daily_report", "observe_streams"}
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys >= {"user_profiles", "bid_requests", "bid_responses", "auction_outcomes",
                    "outcomes", "daily_stats", "daily_win_rate_report", "analyst_exports",
                    "topics/bid_requests", "topics/bid_responses", "topics/auction_outcomes"}
    checks = {k.name for k in repo.asset_graph.asset_check_keys}
    assert checks == {"outcomes_unique_keys", "outcomes_prices_valid",
                      "outcomes_account_for_every_imp", "daily_stats_rates_in_range",
                      "daily_stats_reconcile"}
    assert {s.name for s in repo.sensor_defs} == {
        "outcome_topic_sensor", "alert_on_run_failure", "alert_on_check_failure",
        "helios_automation"}
    # idle means no runs: one clock (the daily report); the rest follows data
    assert {s.name for s in repo.schedule_defs} == {"daily_report_schedule"}
    automated = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()
                 if repo.asset_graph.get(k).automation_condition is not None}
    assert automated == {"daily_stats", "serving_daily_stats", "analyst_exports"}
    ingest = defs.resolve_job_def("ingest_outcomes")  # observes the topics it reads
    assert {k.to_user_string() for k in ingest.asset_layer.selected_asset_keys} >= {
        "topics/auction_outcomes", "auction_outcomes", "outcomes", "serving_snapshot"}
    upstream = repo.asset_graph.get(dg.AssetKey("auction_outcomes")).parent_keys
    assert dg.AssetKey(["topics", "auction_outcomes"]) in upstream  # lineage from the stream


def test_user_profiles_asset_writes_duckdb_and_redis_reproducibly(settings, tmp_path):
    db = tmp_path / "wh.duckdb"
    res = dg.materialize([user_profiles], resources=resources(settings, db), run_config={
        "ops": {"user_profiles": {"config": {"users": 700, "seed": 99, "batch": 256}}}})
    assert res.success
    assert q(db, "SELECT count(*), count(DISTINCT user_id) FROM user_profiles") == [(700, 700)]
    expected = {p.user_id: p for p in generate(700, seed=99)}
    raw = store.read_profiles(store.connect(settings.redis_url), [user_id(0), user_id(699)])
    from ingest_services.profiles.generated import user_profile_pb2 as pb

    assert [pb.UserProfile.FromString(b) for b in raw] == [expected[user_id(0)],
                                                           expected[user_id(699)]]
    mat = res.asset_materializations_for_node("user_profiles")[0]
    assert mat.metadata["dagster/row_count"].value == 700
    # restore the session's seed-7 profiles for the other tests
    from ingest_services.profiles.seed import load_into_redis

    load_into_redis(store.connect(settings.redis_url), SEED_USERS, seed=7)


def test_full_graph_ingests_exactly_once_and_builds_stats_report_and_exports(
    settings, examples, tmp_path
):
    imps = run_traffic(settings, examples)
    db = tmp_path / "wh.duckdb"
    rs = resources(settings, db)
    assert dg.materialize([*RAW, outcomes], resources=rs).success
    assert q(db, "SELECT count(*) FROM outcomes") == [(imps,)]
    assert q(db, "SELECT count(*) FROM bid_requests") == [(imps,)]
    # a second run over the same topics adds nothing
    again = dg.materialize([*RAW, outcomes], resources=rs)
    assert again.success
    assert q(db, "SELECT count(*) FROM outcomes") == [(imps,)]
    assert again.asset_materializations_for_node("auction_outcomes")[0].metadata[
        "rows_inserted"].value == 0

    day = today()
    reports = tmp_path / "reports"
    exports = tmp_path / "exports"
    res = dg.materialize(
        [outcomes, daily_stats, daily_win_rate_report, analyst_exports],
        resources=rs, partition_key=day,
        selection=[daily_stats, daily_win_rate_report],
        run_config={"ops": {"daily_win_rate_report": {"config": {
            "reports_dir": str(reports)}}}})
    assert res.success
    stats = q(db, f"SELECT sum(requests), sum(bids), sum(wins) FROM daily_stats "
                  f"WHERE day = '{day}'")[0]
    direct = q(db, "SELECT count(*), count(*) FILTER (WHERE outcome IN ('won','lost')), "
                   "count(*) FILTER (WHERE outcome = 'won') FROM outcomes")[0]
    assert stats == direct
    for name in ("report.html", "report.md", "daily_stats.csv", "win_rate_by_hour.png"):
        assert (reports / day / name).stat().st_size > 0
    md = res.asset_materializations_for_node("daily_win_rate_report")[0].metadata
    assert "| domain | segment |" in md["by_site_and_segment"].value
    assert md["win_rate_by_hour"].value.startswith("![win rate by hour](data:image/png;base64,")

    res = dg.materialize([outcomes, daily_stats, analyst_exports], resources=rs,
                         selection=[analyst_exports])  # to the `paths` resource's exports_dir
    assert res.success
    assert (exports / "outcomes" / f"{day}.parquet").exists()
    analyst = duckdb.connect(str(exports / "helios.duckdb"), read_only=True)
    analyst.execute(f"SET file_search_path = '{exports}'")  # the views' paths are relative
    assert analyst.execute("SELECT count(*) FROM outcomes").fetchone() == (imps,)
    analyst.close()

    # `helios export` writes the same layout from the command line, for a date range
    import subprocess
    import sys

    cli = [sys.executable, "-m", "helios_pipeline.cli", "export", "--warehouse", str(db)]
    done = subprocess.run([*cli, "--out", str(tmp_path / "cli"), "--from", day, "--to", day],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "exported 1 day:" in done.stderr  # not "1 days"
    mine = duckdb.connect(str(tmp_path / "cli" / "helios.duckdb"), read_only=True)
    mine.execute(f"SET file_search_path = '{tmp_path / 'cli'}'")
    assert mine.execute("SELECT count(*) FROM outcomes").fetchone() == (imps,)
    mine.close()
    empty = subprocess.run([*cli, "--out", str(tmp_path / "none"), "--to", "2000-01-01"],
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 0 and "exported 0 days" in empty.stderr
    bad = subprocess.run([*cli, "--out", str(tmp_path / "bad"), "--from", "yesterday"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: --from 'yesterday' is not a date: use YYYY-MM-DD"


def _crash_after_insert(settings_dict: dict, wh: WarehouseSpec) -> None:
    from ingest_services.settings import load_settings

    s = load_settings(**settings_dict)
    kafka = KafkaResource(bootstrap_servers=s.kafka_bootstrap)
    with wh.open() as db:
        ingest_topic(db, kafka.reader_conf("crash"), s.topic_outcomes, "auction_outcomes",
                     before_commit=lambda: os._exit(3))  # dies between INSERT and COMMIT


def wq(wh: WarehouseSpec, sql: str) -> list[tuple]:
    with wh.open(read_only=True) as db:
        return [tuple(r) for r in db.execute(sql)]


def test_ingest_killed_between_insert_and_commit_then_rerun_equals_clean_run(
    settings, examples, tmp_path, warehouse_backend
):
    imps = run_traffic(settings, examples, n_synthetic=100)
    crashed = warehouse_backend
    clean = replace(crashed, path=str(tmp_path / "clean.duckdb"),
                    schema=crashed.schema and crashed.schema + "_clean")
    dump = {k: getattr(settings, k) for k in ("kafka_bootstrap", "topic_outcomes")}
    proc = multiprocessing.get_context("spawn").Process(
        target=_crash_after_insert, args=(dump, crashed))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 3
    for wh in (crashed, clean):
        rs = resources(settings, tmp_path / "unused.duckdb", wh)
        assert dg.materialize([raw_auction_outcomes], resources=rs).success
    cols = "rid, imp_id, outcome, clearing_price_usd, loss_reason"
    a = wq(crashed, f"SELECT {cols} FROM auction_outcomes ORDER BY rid, imp_id")
    b = wq(clean, f"SELECT {cols} FROM auction_outcomes ORDER BY rid, imp_id")
    assert len(a) == imps and a == b
    assert wq(crashed, "SELECT sum(next_offset) FROM ingest_offsets") == \
        wq(clean, "SELECT sum(next_offset) FROM ingest_offsets")


def test_daily_stats_rematerialisation_is_idempotent_and_checks_catch_planted_rows(
    settings, examples, tmp_path, warehouse_backend
):
    run_traffic(settings, examples, n_synthetic=100)
    wh = warehouse_backend
    rs = resources(settings, tmp_path / "wh.duckdb", wh)
    every = "SELECT * FROM daily_stats ORDER BY day, hour, domain, segment, media"
    assert dg.materialize([*RAW, outcomes], resources=rs).success
    day = today()
    for _ in range(2):
        res = dg.materialize([outcomes, daily_stats], resources=rs, partition_key=day,
                             selection=[daily_stats])
        assert res.success
    snapshot = wq(wh, every)
    assert snapshot
    assert dg.materialize([outcomes, daily_stats], resources=rs, partition_key=day,
                          selection=[daily_stats]).success
    assert wq(wh, every) == snapshot

    def evaluate(check_def, assets_=(outcomes,)):
        r = dg.materialize([*assets_, check_def], resources=rs, raise_on_error=False,
                           selection=dg.AssetSelection.checks(check_def), partition_key=None)
        return r.get_asset_check_evaluations()[0].passed, r.success

    def check(check_def, assets_=(outcomes,)):
        return evaluate(check_def, assets_)[0]

    assert check(outcomes_unique_keys) and check(outcomes_prices_valid)
    assert check(daily_stats_rates_in_range, (outcomes, daily_stats))
    assert check(outcomes_account_for_every_imp)
    with wh.open() as con:
        # a doubled row (the table has no primary key: the ingest keeps keys unique, the
        # check catches it if anything else doubles one)
        con.execute("INSERT INTO outcomes SELECT * FROM outcomes LIMIT 1")
        con.execute("UPDATE outcomes SET clearing_price_usd = bid_price_usd + 1 "
                    "WHERE rid = (SELECT min(rid) FROM outcomes WHERE outcome = 'won')")
        con.execute(f"UPDATE daily_stats SET wins = wins + 5, win_rate = 1.5 WHERE day = '{day}' "
                    f"AND hour = (SELECT min(hour) FROM daily_stats WHERE day = '{day}')")
        # an accepted imp, long before the newest request, that never got an outcome
        con.execute("INSERT INTO bid_requests (rid, imp_id, received_at) "
                    "VALUES ('lost-rid', '1', TIMESTAMPTZ '2000-01-01 00:00:00+00')")
    assert not check(outcomes_unique_keys)
    assert not check(outcomes_prices_valid)
    assert not check(daily_stats_reconcile, (outcomes, daily_stats))
    assert not check(daily_stats_rates_in_range, (outcomes, daily_stats))
    passed, run_ok = evaluate(outcomes_account_for_every_imp)
    assert not passed and not run_ok  # blocking: the run stops, downstream does not run


def test_outcome_sensor_requests_runs_only_when_the_topic_moves(settings, examples):
    """Idle means no runs: a run when the watermarks move; when they do not, a retry only
    while the last ingest is behind them (a failed run), never for a caught-up warehouse."""
    from sensors.outcome_topic import RETRY_S, topic_watermarks

    rs = resources(settings, Path("unused.duckdb"))
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None):
        ctx = dg.build_sensor_context(instance=instance, resources={"kafka": rs["kafka"]},
                                      cursor=cursor)
        return outcome_topic_sensor(ctx), ctx.cursor

    result, cursor = tick(None)
    assert isinstance(result, dg.SkipReason)  # empty topic: nothing to do
    produce(settings, settings.topic_outcomes, [("k", b"{}")])
    first, cursor = tick(cursor)
    assert isinstance(first, dg.RunRequest)
    again, _ = tick(cursor)
    assert isinstance(again, dg.SkipReason)  # same watermarks, requested just now: once only
    long_ago = orjson.dumps({**orjson.loads(cursor), "requested_at": 0}).decode()
    retry, _ = tick(long_ago)  # the run never ingested (it failed): asked again, once a minute
    assert isinstance(retry, dg.RunRequest) and retry.run_key != first.run_key
    assert RETRY_S <= 300
    marks = topic_watermarks(rs["kafka"], settings.topic_outcomes)
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "auction_outcomes", metadata={"next_offsets": dg.MetadataValue.json(marks)}))
    idle, _ = tick(long_ago)  # the warehouse caught up: no run, however long it stays idle
    assert isinstance(idle, dg.SkipReason) and "idle" in idle.skip_message
    produce(settings, settings.topic_outcomes, [("k2", b"{}")])
    queued = instance.add_run(dg.DagsterRun(  # an ingest run still waiting for the pool
        job_name="ingest_outcomes", run_id=uuid.uuid4().hex,
        status=dg.DagsterRunStatus.NOT_STARTED))
    behind_queue, _ = tick(cursor)
    assert isinstance(behind_queue, dg.SkipReason) and queued.run_id in behind_queue.skip_message
    instance.report_run_canceled(queued)
    running = instance.add_run(dg.DagsterRun(  # one ingest at a time: a running one too
        job_name="ingest_outcomes", run_id=uuid.uuid4().hex,
        status=dg.DagsterRunStatus.STARTED))
    behind_run, _ = tick(cursor)
    assert isinstance(behind_run, dg.SkipReason) and running.run_id in behind_run.skip_message
    instance.report_run_failed(running)
    second, _ = tick(cursor)
    assert isinstance(second, dg.RunRequest) and second.run_key != first.run_key


def test_daily_report_schedule_targets_yesterday():
    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 21, 0, 15, tzinfo=UTC))
    req = daily_report_schedule(ctx)
    assert req.partition_key == "2026-11-20" and req.run_key == "report-2026-11-20"
    from helios_pipeline.automation import PARTITIONS_START

    before = datetime.fromisoformat(PARTITIONS_START).replace(tzinfo=UTC)  # day 1's 00:15
    early = daily_report_schedule(dg.build_schedule_context(scheduled_execution_time=before))
    assert isinstance(early, dg.SkipReason)  # the day before the first partition: no run


def test_topic_observation_reports_offsets_and_consumer_lag(settings, examples):
    from assets.streams import observe_topics
    from helios_pipeline.jobs import observe_topics_job

    reqs = envelopes([f.read_bytes() for f in examples[:5]])
    produce(settings, "bid_requests", [(rid, v) for rid, v, _ in reqs])
    # the observation reads the default topic names; give it the session broker only
    kafka = KafkaResource(bootstrap_servers=settings.kafka_bootstrap)
    from ingest_services.common.kafka import ensure_topics

    ensure_topics(settings.model_copy(update={"topic_requests": "bid_requests",
                                              "topic_responses": "bid_responses",
                                              "topic_outcomes": "auction_outcomes"}))
    job = dg.Definitions(assets=[observe_topics], jobs=[observe_topics_job],
                         resources={"kafka": kafka}).resolve_job_def("observe_streams")
    result = job.execute_in_process()
    assert result.success
    obs = {e.asset_key.to_user_string(): e.event_specific_data.asset_observation.metadata
           for e in result.get_asset_observation_events()}
    assert set(obs) == {"topics/bid_requests", "topics/bid_responses",
                        "topics/auction_outcomes", "topics/bid_requests_dlq",
                        "topics/bid_responses_dlq", "topics/auction_outcomes_dlq"}
    req = obs["topics/bid_requests"]
    assert req["exists"].value is True
    assert req["messages_approx"].value >= 1  # Tansu: a lower bound, never above the truth
    assert req["messages_approx"].value <= len(reqs) * 10
    assert req["consumer_lag_approx"].value >= 1  # nothing consumed by helios-bidder here


def test_poison_on_the_outcome_topic_is_recorded_once_and_ingest_moves_on(settings, tmp_path):
    good = {"v": 1, "rid": "r1", "request_id": "q1", "imp_id": "1", "outcome": "nobid",
            "nobid_reason": "below_floor", "decided_at": 1_790_000_000_000,
            "received_at": 1_790_000_000_000}
    produce(settings, settings.topic_outcomes,
            [("poison", b"\x00 not json"), ("r1", orjson.dumps(good)), ("bytes", b"\xff\xfe"),
             ("partial", b'{"v":1,"rid":"r2"}')])
    db = tmp_path / "wh.duckdb"
    for _ in range(2):  # a rerun neither re-reads nor re-records anything
        assert dg.materialize([raw_auction_outcomes], resources=resources(settings, db)).success
    assert q(db, "SELECT rid, outcome FROM auction_outcomes") == [("r1", "nobid")]
    rejects = q(db, 'SELECT topic, reason FROM ingest_rejects ORDER BY "offset"')
    assert sorted(rejects) == sorted([  # keys spread over partitions: compare as a set
        (settings.topic_outcomes, "invalid JSON"),
        (settings.topic_outcomes, "not UTF-8 text"),
        (settings.topic_outcomes, "missing required field (rid, imp_id, outcome, decided_at)"),
    ])


def test_serving_daily_stats_mirrors_a_partition_into_postgres_idempotently(
    settings, examples, tmp_path, pg_server
):
    import psycopg2

    from assets.serving import serving_daily_stats
    from helios_pipeline.resources import PostgresResource

    server, _ = pg_server
    run_traffic(settings, examples, n_synthetic=100)
    db = tmp_path / "wh.duckdb"
    rs = {**resources(settings, db), "postgres": PostgresResource(dsn=server.get_uri())}
    assert dg.materialize([*RAW, outcomes], resources=rs).success
    day = today()
    for _ in range(2):  # the second run replaces the day, it does not add to it
        res = dg.materialize([outcomes, daily_stats, serving_daily_stats], resources=rs,
                             partition_key=day, selection=[daily_stats, serving_daily_stats])
        assert res.success
    cols = "day, hour, domain, segment, media, requests, bids, wins, spend_usd"
    duck = q(db, f"SELECT {cols} FROM daily_stats WHERE day = '{day}' ORDER BY ALL")
    pg = psycopg2.connect(server.get_uri())
    try:
        with pg.cursor() as cur:
            cur.execute(f"SELECT {cols} FROM daily_stats WHERE day = %s "
                        "ORDER BY day, hour, domain, segment, media", [day])
            served = cur.fetchall()
    finally:
        pg.close()
    assert len(served) == len(duck) > 0
    assert [r[:8] for r in served] == [r[:8] for r in duck]
    assert all(abs(a[8] - b[8]) < 1e-9 for a, b in zip(served, duck, strict=True))


def test_report_and_serving_daily_stats_read_either_warehouse(
    settings, examples, tmp_path, pg_server, warehouse_backend
):
    """The day's report and the serving mirror come out of the DuckDB file or, through a
    local DuckDB copy of the day's rows, out of the PostgreSQL warehouse."""
    import psycopg2

    from assets.serving import serving_daily_stats
    from helios_pipeline.resources import PostgresResource

    server, _ = pg_server
    serving = f"srv_{uuid.uuid4().hex[:10]}"  # its own schema: tests stay independent
    with psycopg2.connect(server.get_uri()) as pg, pg.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {serving}")
    pg.close()
    dsn = f"{server.get_uri()}&options=-csearch_path%3D{serving}"
    run_traffic(settings, examples, n_synthetic=60)
    rs = {**resources(settings, tmp_path / "wh.duckdb", warehouse_backend),
          "postgres": PostgresResource(dsn=dsn)}
    day = today()
    assert dg.materialize([*RAW, outcomes], resources=rs).success
    res = dg.materialize([outcomes, daily_stats, daily_win_rate_report, serving_daily_stats],
                         resources=rs, partition_key=day,
                         selection=[daily_stats, daily_win_rate_report, serving_daily_stats])
    assert res.success
    (req,), = wq(warehouse_backend, "SELECT CAST(sum(requests) AS BIGINT) FROM daily_stats")
    report = res.asset_materializations_for_node("daily_win_rate_report")[0].metadata
    assert report["requests"].value == req > 0
    assert (tmp_path / "reports" / day / "report.html").exists()
    served = res.asset_materializations_for_node("serving_daily_stats")[0].metadata
    assert served["requests"].value == req
    assert served["data_lag_seconds"].value >= 0 and "newest_row_at" in served  # freshness


@pytest.fixture
def webhook(monkeypatch):
    """A real HTTP endpoint on 127.0.0.1 standing in for Slack: records every POSTed body."""
    import http.server
    import threading

    from helios_pipeline.stack.probes import free_port

    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HELIOS_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}/hook")
    yield received
    server.shutdown()
    server.server_close()


def run_event(res: dg.ExecuteInProcessResult, kind: str):
    return next(e for e in res.all_events if e.event_type_value == kind)


def test_run_failure_alert_logs_one_structured_line_and_posts_to_the_webhook(caplog, webhook):
    from sensors.alerts import alert_on_run_failure

    @dg.asset
    def broken():
        raise RuntimeError("boom")

    with dg.DagsterInstance.ephemeral() as instance:
        res = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not res.success
        ctx = dg.build_run_status_sensor_context(
            sensor_name="alert_on_run_failure", dagster_event=run_event(res, "PIPELINE_FAILURE"),
            dagster_instance=instance, dagster_run=res.dagster_run).for_run_failure()
        with caplog.at_level("ERROR"):
            alert_on_run_failure(ctx)
    lines = [r.getMessage() for r in caplog.records if '"run_failed"' in r.getMessage()]
    assert len(lines) == 1
    record = orjson.loads(lines[0][lines[0].index("{"):])
    assert record["run_id"] == res.run_id and record["event"] == "run_failed"
    assert len(webhook) == 1  # Slack-compatible: text for any webhook, blocks for Slack
    msg = webhook[0]
    assert res.run_id in msg["text"] and "failed" in msg["text"]
    assert [b["type"] for b in msg["blocks"]] == ["header", "section"]


def test_check_failure_alert_posts_failed_checks_only(webhook, monkeypatch):
    from sensors.alerts import alert_on_check_failure

    @dg.asset
    def prices():
        return 1

    @dg.asset_check(asset=prices)
    def prices_positive() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=PASSED[0], metadata={"bad_prices": 0 if PASSED[0] else 7})

    PASSED = [True]
    with dg.DagsterInstance.ephemeral() as instance:
        def alert_for_run():
            res = dg.materialize([prices, prices_positive], instance=instance)
            assert res.success  # a non-blocking check fails without failing its run
            ctx = dg.build_run_status_sensor_context(
                sensor_name="alert_on_check_failure",
                dagster_event=run_event(res, "PIPELINE_SUCCESS"), dagster_instance=instance,
                dagster_run=res.dagster_run)
            alert_on_check_failure(ctx)
            return res

        alert_for_run()
        assert webhook == []  # every check passed: nothing to say
        PASSED[0] = False
        res = alert_for_run()
    assert len(webhook) == 1
    text = webhook[0]["text"]
    assert "prices_positive" in text and "bad_prices" in text and res.run_id in text
    monkeypatch.setenv("HELIOS_ALERT_WEBHOOK_URL", "slack.example")  # not a URL: one line
    from ingest_services.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match=r"HELIOS_ALERT_WEBHOOK_URL.*http"):
        load_settings()


def test_automation_refreshes_stats_and_exports_after_ingest_and_never_when_idle():
    """The declarative automation that replaced the 5-minute schedules, evaluated by
    Dagster's own evaluator against a real instance: today's daily_stats, its PostgreSQL
    mirror and the exports run once a refresh tick has passed *and* outcomes changed, in
    one tick together, once; an idle warehouse requests nothing, tick after tick."""
    from datetime import timedelta

    from helios_pipeline.automation import STATS_CRON

    assert STATS_CRON == "*/5 * * * *"  # the default HELIOS_STATS_REFRESH_S=300
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    tick = now - timedelta(minutes=now.minute % 5)  # the last */5 tick
    followers = [dg.AssetKey("daily_stats"), dg.AssetKey("serving_daily_stats"),
                 dg.AssetKey("analyst_exports")]
    with dg.DagsterInstance.ephemeral() as instance:
        cursor = None

        def evaluate(minutes: int) -> dict[dg.AssetKey, set]:
            nonlocal cursor
            res = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, cursor=cursor,
                evaluation_time=tick + timedelta(minutes=minutes))
            cursor = res.cursor
            return {k: res.get_requested_partitions(k) for k in followers
                    if res.get_requested_partitions(k)}

        def ingest() -> None:
            instance.report_runless_asset_event(dg.AssetMaterialization("outcomes"))

        assert evaluate(1) == {}  # first look: nothing has happened
        ingest()
        assert evaluate(2) == {}  # changed, but no refresh tick since: wait for it
        day = (tick + timedelta(minutes=6)).strftime("%Y-%m-%d")
        assert evaluate(6) == {dg.AssetKey("daily_stats"): {day},  # today only, all 3 at once
                               dg.AssetKey("serving_daily_stats"): {day},
                               dg.AssetKey("analyst_exports"): {None}}
        assert evaluate(7) == {}  # requested once
        for minutes in (11, 16, 21, 26):  # idle: ticks pass, nothing changes, no runs
            assert evaluate(minutes) == {}
        ingest()
        assert set(evaluate(31)) == set(followers)  # the next change, the next tick
