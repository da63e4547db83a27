"""Fault injection on the real stack: `helios up` with Dagster, steady load through the
gateway, ``kill -9`` of the bidder, the profile service and the auctioneer mid-load, then
of the gateway under a second load (the supervisor restarts each), then `helios audit`:
nothing missing on the wire or in the warehouse, nothing doubled in the warehouse (wire
duplicates from the kills are allowed and counted), and every request that did not get a
202 got an error the client saw. And ``kill -9`` of a Dagster ingest run mid-batch: the
sensor's next run leaves the tables as a clean run would.

Each test starts a whole stack (about 3 minutes for the module on a busy two-core machine),
so they run with ``make test-faults`` (``pytest --faults``), not in ``make test``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from helios_pipeline.stack.servers import wait_for
from helios_pipeline.warehouse.duckdb_file import connect_waiting
from tests.integration.test_stack_e2e import Stack, helios

pytestmark = [pytest.mark.integration, pytest.mark.faults]

RATE, SECONDS = 400, 16


def kill9_and_wait_for_restart(stack: Stack, name: str) -> tuple[int, int]:
    old = stack.state()["processes"][name]
    os.kill(old, signal.SIGKILL)
    assert wait_for(lambda: stack.state()["processes"][name] != old, 60), stack.output()
    new = stack.state()["processes"][name]
    assert psutil.pid_exists(new)
    return old, new


def start_load(stack: Stack, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "helios_pipeline.cli", "load", "--rate", str(RATE),
         "--duration", str(seconds), "--users", "500", "--json"],
        env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.timeout(600)
def test_kill9_of_each_service_under_load_loses_and_doubles_nothing(tmp_path):
    stack = Stack(tmp_path, HELIOS_DAGSTER="true", HELIOS_POSTGRES="false")
    try:
        stack.wait_ready()
        seeded = helios(stack.env, "profiles", "seed", "--users", "500", "--seed", "7")
        assert seeded.returncode == 0, seeded.stderr
        load = start_load(stack, SECONDS)
        time.sleep(SECONDS * 0.2)
        kill9_and_wait_for_restart(stack, "bidder")
        time.sleep(SECONDS * 0.15)
        kill9_and_wait_for_restart(stack, "profiles")  # the bidder bids unenriched meanwhile
        time.sleep(SECONDS * 0.15)
        kill9_and_wait_for_restart(stack, "auctioneer")
        out, err = load.communicate(timeout=SECONDS + 120)
        assert load.returncode == 0, err
        report = json.loads(out)
        # the gateway was not killed yet: every request sent got its 202
        assert report["errors"] == 0 and report["rejected"] == 0, report
        assert report["accepted"] > RATE * SECONDS * 0.5, report

        # the gateway itself: requests in flight or sent while it is down fail visibly
        load = start_load(stack, 8)
        time.sleep(3)
        kill9_and_wait_for_restart(stack, "gateway")
        out, err = load.communicate(timeout=140)
        second = json.loads(out)
        assert second["rejected"] == 0, second
        assert second["accepted"] + second["errors"] == second["sent"], second
        assert second["accepted"] > 0 and second["errors"] > 0, second

        audit = helios(stack.env, "audit", "--json", "--wait", "240", timeout=400)
        rep = json.loads(audit.stdout)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        # a request can be on the broker without its 202 (killed between ack and answer)
        accepted = report["accepted"] + second["accepted"]
        assert accepted <= rep["accepted"] <= accepted + second["errors"], (rep, second)
        assert rep["missing"] == 0 and rep["dead_letters"] == 0
        wh = rep["warehouse"]
        assert wh["checked"] is True, wh
        assert wh["missing"] == 0 and wh["duplicated"] == 0, wh
        assert wh["rows"] >= rep["imps"]
        # what the kills cost on the wire: reported, allowed, collapsed in the warehouse
        print(f"faults: accepted={rep['accepted']} imps={rep['imps']} "
              f"wire_duplicated={rep['duplicated']} warehouse_rows={wh['rows']} "
              f"load1={report['accepted']}/{report['sent']} load2={second['accepted']}"
              f"/{second['sent']} gateway_kill_errors={second['errors']}")
        # the supervisor saw each kill and restarted the service
        for name in ("bidder", "profiles", "auctioneer", "gateway"):
            assert f"{name} exited with code -9; restarting" in stack.output(), stack.output()
    finally:
        assert stack.stop() == 0


@pytest.mark.timeout(300)
def test_redis_paused_bids_continue_unenriched_then_enrichment_resumes(tmp_path):
    """Redis frozen (SIGSTOP) for 8 s under load: the bidder's profile calls time out, the
    circuit breaker opens, bids go on unenriched and say why; the gateway's clients see no
    error; after SIGCONT enrichment resumes. Nothing missing on the wire."""
    from ingest_services.settings import load_settings
    from tests.integration.conftest import read_all

    stack = Stack(tmp_path, HELIOS_POSTGRES="false", HELIOS_BREAKER_RESET_S="1")
    try:
        state = stack.wait_ready()
        seeded = helios(stack.env, "profiles", "seed", "--users", "500", "--seed", "7")
        assert seeded.returncode == 0, seeded.stderr
        redis_pid = state["processes"]["redis"]
        load = start_load(stack, SECONDS)
        time.sleep(4)
        paused_at = time.time() * 1000
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            time.sleep(8)
        finally:
            os.kill(redis_pid, signal.SIGCONT)
        resumed_at = time.time() * 1000
        out, err = load.communicate(timeout=SECONDS + 120)
        assert load.returncode == 0, err
        report = json.loads(out)
        assert report["errors"] == 0 and report["rejected"] == 0, report  # clients: no error
        audit = helios(stack.env, "audit", "--json", "--wait", "120", timeout=200)
        rep = json.loads(audit.stdout)
        assert audit.returncode == 0 and rep["missing"] == 0, audit.stdout + audit.stderr
        assert rep["accepted"] == report["accepted"]

        s = load_settings(kafka_bootstrap=state["endpoints"]["kafka_bootstrap"])
        responses = [orjson_loads(x.value()) for x in
                     read_all(s, s.topic_responses, expect=report["accepted"], timeout=60)]
        before = {r["profile"] for r in responses if r["bid_at"] < paused_at}
        during = {r["profile"] for r in responses if paused_at + 1000 < r["bid_at"] < resumed_at}
        after = {r["profile"] for r in responses if r["bid_at"] > resumed_at + 3000}
        assert "found" in before, before
        # no "found" while Redis is frozen ("no_user": requests without a user id)
        assert during & {"unavailable", "circuit_open"}, during
        assert during <= {"unavailable", "circuit_open", "no_user"}, during
        assert "found" in after, after
        print(f"redis pause: before={sorted(before)} during={sorted(during)} "
              f"after={sorted(after)} accepted={rep['accepted']}")
    finally:
        assert stack.stop() == 0


def orjson_loads(value: bytes) -> dict:
    import orjson

    return orjson.loads(value)


@pytest.mark.timeout(300)
def test_broker_paused_gateway_answers_503_then_everything_resumes(tmp_path):
    """The broker frozen (SIGSTOP) for 8 s under load: the gateway answers 503 with
    Retry-After for what the broker did not acknowledge (never a 202), and once the broker
    is back the gateway, bidder and auctioneer carry on; nothing missing on the wire."""
    import httpx

    stack = Stack(tmp_path, HELIOS_POSTGRES="false")
    try:
        state = stack.wait_ready()
        broker = state["processes"]["broker"]
        load = start_load(stack, SECONDS)
        time.sleep(4)
        os.kill(broker, signal.SIGSTOP)
        try:
            time.sleep(8)
            # while frozen: a clear 503 with Retry-After, not a hang and not a 202
            resp = httpx.post(state["endpoints"]["gateway_url"].rstrip("/") + "/bid",
                              content=b'{"id":"x","imp":[{"id":"1","banner":{}}]}',
                              timeout=30)
            assert resp.status_code == 503 and resp.headers["retry-after"], resp.text
        finally:
            os.kill(broker, signal.SIGCONT)
        out, err = load.communicate(timeout=SECONDS + 120)
        assert load.returncode == 0, err
        report = json.loads(out)
        assert report["rejected"] == 0, report
        assert set(report["statuses"]) <= {"202", "503"}, report["statuses"]
        assert report["statuses"].get("503", 0) > 0, report
        assert report["accepted"] + report["errors"] == report["sent"], report
        # after the pause the gateway accepts again
        assert wait_for(lambda: httpx.post(
            state["endpoints"]["gateway_url"].rstrip("/") + "/bid",
            content=b'{"id":"y","imp":[{"id":"1","banner":{}}]}', timeout=10
        ).status_code == 202, 30)
        audit = helios(stack.env, "audit", "--json", "--wait", "120", timeout=200)
        rep = json.loads(audit.stdout)
        assert audit.returncode == 0 and rep["missing"] == 0, audit.stdout + audit.stderr
        # every 202 is on the wire; a 503'd request may have reached it too (then counted)
        assert rep["accepted"] >= report["accepted"] + 1, (rep, report)
        print(f"broker pause: 202={report['accepted']} 503={report['statuses'].get('503')} "
              f"wire_accepted={rep['accepted']} wire_duplicated={rep['duplicated']}")
    finally:
        assert stack.stop() == 0


@pytest.mark.timeout(300)
def test_second_bidder_and_auctioneer_killed_their_partitions_are_taken_over(tmp_path):
    """Two bidders and two auctioneers in one consumer group each (the stack's and one more
    of each, `helios serve`), the extra ones killed with -9 mid-load and not restarted: the
    group rebalances, the survivors take the partitions over from the committed offsets,
    nothing is missing on the wire."""
    from helios_pipeline.stack import probes

    stack = Stack(tmp_path, HELIOS_POSTGRES="false")
    extra: list[subprocess.Popen] = []
    try:
        eps = stack.wait_ready()["endpoints"]
        env = {**stack.env, "HELIOS_KAFKA_BOOTSTRAP": eps["kafka_bootstrap"],
               "HELIOS_PROFILE_ADDR": eps["profile_service"],
               "HELIOS_BIDDER_METRICS_PORT": str(probes.free_port()),
               "HELIOS_AUCTIONEER_METRICS_PORT": str(probes.free_port())}
        for service, port_var in (("bidder", "HELIOS_BIDDER_METRICS_PORT"),
                                  ("auctioneer", "HELIOS_AUCTIONEER_METRICS_PORT")):
            log = open(tmp_path / f"extra-{service}.log", "wb")  # noqa: SIM115
            extra.append(subprocess.Popen(
                [sys.executable, "-m", "helios_pipeline.cli", "serve", service], env=env,
                stdout=log, stderr=subprocess.STDOUT))
            url = f"http://127.0.0.1:{env[port_var]}/readyz"
            assert wait_for(lambda u=url: probes.http_ok(u), 60), service
        load = start_load(stack, SECONDS)
        time.sleep(SECONDS * 0.4)
        for proc in extra:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        out, err = load.communicate(timeout=SECONDS + 120)
        assert load.returncode == 0, err
        report = json.loads(out)
        assert report["errors"] == 0, report
        audit = helios(stack.env, "audit", "--json", "--wait", "120", timeout=200)
        rep = json.loads(audit.stdout)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert rep["accepted"] == report["accepted"] and rep["missing"] == 0, rep
        assert rep["dead_letters"] == 0
        print(f"group takeover: accepted={rep['accepted']} imps={rep['imps']} "
              f"wire_duplicated={rep['duplicated']}")
    finally:
        for proc in extra:
            if proc.poll() is None:
                proc.kill()
        assert stack.stop() == 0


SENSOR = """query($sel: SensorSelector!) { sensorOrError(sensorSelector: $sel) {
  __typename ... on Sensor { id sensorState { status } } } }"""
STOP_SENSOR = "mutation($id: String) { stopSensor(id: $id) { __typename } }"
START_SENSOR = ("mutation($sel: SensorSelector!) "
                "{ startSensor(sensorSelector: $sel) { __typename } }")
INGEST_STEPS = ("bid_requests", "bid_responses", "auction_outcomes")
RAW_TABLES = (*INGEST_STEPS, "outcomes")


def _run_pid(instance, run_id: str) -> int | None:
    """The run worker's PID, from the engine event the worker logs when it starts."""
    import re

    for event in instance.all_logs(run_id):
        found = re.search(r"Started process for run \(pid: (\d+)\)", event.message or "")
        if found:
            return int(found.group(1))
    return None


def _steps(instance, run_id: str) -> tuple[set[str], set[str]]:
    """Step keys started and succeeded in a run."""
    import dagster as dg

    started, done = set(), set()
    for event in instance.all_logs(run_id):
        if event.dagster_event is None:
            continue
        if event.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            started.add(event.dagster_event.step_key)
        elif event.dagster_event.event_type == dg.DagsterEventType.STEP_SUCCESS:
            done.add(event.dagster_event.step_key)
    return started, done


def _table_counts(path: str) -> dict[str, tuple[int, int]]:
    """(rows, distinct (rid, imp_id)) per raw table and ``outcomes``, read-only (a Dagster
    run may hold the DuckDB file's lock for a moment: retried)."""
    con = connect_waiting(path, read_only=True, wait_s=30)
    try:
        return {t: tuple(con.execute(
            f"SELECT count(*), count(DISTINCT (rid, imp_id)) FROM {t}").fetchall()[0])
            for t in RAW_TABLES}
    finally:
        con.close()


@pytest.mark.timeout(600)
def test_ingest_run_killed_mid_batch_then_the_sensors_next_run_makes_the_tables_whole(
        tmp_path):
    """A backlog on the topics (the sensor stopped meanwhile), the sensor started, its
    ``ingest_outcomes`` run SIGKILLed while an ingest step is in its transaction: Dagster
    marks the run failed (the code server sees its worker die), the monitoring daemon frees
    the ``duckdb_writer`` slot the step held, the sensor's next run (more traffic arrived)
    completes, and the warehouse holds exactly what the wire has: every raw table and
    ``outcomes`` one row per accepted imp, nothing missing, nothing doubled."""
    import dagster as dg

    from helios_pipeline.dagster_client import REPOSITORY, DagsterClient

    stack = Stack(tmp_path, HELIOS_DAGSTER="true", HELIOS_POSTGRES="false")
    try:
        state = stack.wait_ready(timeout=150)
        client = DagsterClient.from_url(state["endpoints"]["dagster_ui"])
        sel = {"repositoryName": REPOSITORY, "sensorName": "outcome_topic_sensor",
               "repositoryLocationName": client.wait_for_location()}
        sensor = client._execute(SENSOR, {"sel": sel})["sensorOrError"]
        assert sensor["__typename"] == "Sensor", sensor
        client._execute(STOP_SENSOR, {"id": sensor["id"]})
        assert client._execute(SENSOR, {"sel": sel})["sensorOrError"]["sensorState"][
            "status"] == "STOPPED"

        # the backlog: one big batch for the run to ingest
        backlog = helios(stack.env, "load", "--rate", str(RATE), "--duration", "20",
                         "--users", "500", "--json", timeout=200)
        assert backlog.returncode == 0, backlog.stderr
        wire = helios(stack.env, "audit", "--json", "--wait", "120", timeout=200)
        assert wire.returncode == 0 and json.loads(wire.stdout)["missing"] == 0, wire.stdout

        instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster"))
        ingest = dg.RunsFilter(job_name="ingest_outcomes")
        assert instance.get_run_records(ingest) == []
        client._execute(START_SENSOR, {"sel": sel})

        def first_run() -> str | None:
            recs = instance.get_run_records(ingest, limit=1)
            return recs[0].dagster_run.run_id if recs else None

        assert wait_for(lambda: first_run() is not None, 90), stack.output()[-3000:]
        run_id = first_run()
        # the worker's pid from its log; the kill lands once an ingest step has begun
        # its transaction (reading the topic, staging, inserting)
        assert wait_for(lambda: _run_pid(instance, run_id) is not None, 120)
        pid = _run_pid(instance, run_id)
        assert wait_for(lambda: _steps(instance, run_id)[0] & set(INGEST_STEPS), 120,
                        ), instance.get_run_by_id(run_id).status
        time.sleep(0.3)
        started, done = _steps(instance, run_id)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        in_flight = (started & set(INGEST_STEPS)) - done
        assert in_flight, (started, done)  # the kill is mid-batch, not between steps

        # Dagster notices: the run is failed (not left STARTED, blocking the pool)
        assert wait_for(lambda: instance.get_run_by_id(run_id).status
                        == dg.DagsterRunStatus.FAILURE, 60), instance.get_run_by_id(run_id)
        noticed_s = time.monotonic() - killed_at
        assert not (_steps(instance, run_id)[1] & in_flight)  # that step never succeeded

        # traffic goes on; the sensor's next run takes the killed batch and the new data
        more = helios(stack.env, "load", "--rate", str(RATE), "--duration", "3",
                      "--users", "500", "--json", timeout=120)
        assert more.returncode == 0, more.stderr

        def next_success() -> bool:
            return any(r.dagster_run.run_id != run_id and r.dagster_run.status
                       == dg.DagsterRunStatus.SUCCESS for r in instance.get_run_records(ingest))

        assert wait_for(next_success, 240), [
            (r.dagster_run.run_id, r.dagster_run.status) for r in instance.get_run_records(ingest)]
        recovered_s = time.monotonic() - killed_at

        audit = helios(stack.env, "audit", "--json", "--wait", "240", timeout=400)
        rep = json.loads(audit.stdout)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert rep["missing"] == 0 and rep["dead_letters"] == 0, rep
        sent = json.loads(backlog.stdout)["accepted"] + json.loads(more.stdout)["accepted"]
        assert rep["accepted"] == sent, (rep, sent)
        wh = rep["warehouse"]
        assert wh["checked"] is True and wh["missing"] == 0 and wh["duplicated"] == 0, wh
        assert wh["rows"] == rep["imps"], (wh, rep["imps"])
        # every table as a clean run leaves it: one row per imp, none doubled
        counts = _table_counts(state["endpoints"]["warehouse"])
        assert counts == {t: (rep["imps"], rep["imps"]) for t in RAW_TABLES}, (counts, rep)
        runs = [r.dagster_run.status.value for r in instance.get_run_records(ingest)]
        instance.dispose()
        print(f"ingest run killed mid-batch (steps in flight: {sorted(in_flight)}): "
              f"failed after {noticed_s:.1f} s, next run succeeded {recovered_s:.1f} s after "
              f"the kill; runs {runs}; accepted={rep['accepted']} imps={rep['imps']} "
              f"tables={counts}")
    finally:
        assert stack.stop() == 0
