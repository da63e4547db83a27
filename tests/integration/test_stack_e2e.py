"""End to end through `helios up`, the CLI and real processes, as an operator runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from helios_pipeline.stack import probes
from helios_pipeline.stack.launch import LaunchedStack, isolated_env
from helios_pipeline.stack.servers import wait_for

pytestmark = pytest.mark.integration

def stack_env(home: Path, **extra: str) -> dict[str, str]:
    """An isolated stack (own home, distinct free ports), quick to notice a dead consumer."""
    return isolated_env(home, **{"HELIOS_SESSION_TIMEOUT_MS": "2000",
                                 "HELIOS_HEARTBEAT_INTERVAL_MS": "200",
                                 # the streaming half; test_dagster_e2e runs the rest
                                 "HELIOS_DAGSTER": "false", **extra})


def helios(env: dict, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helios_pipeline.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


class Stack(LaunchedStack):
    """`helios up` for a test (helios_pipeline/stack/launch.py), failing the test with the
    stack's output when it does not start."""

    def __init__(self, home: Path, *args: str, **extra: str) -> None:
        super().__init__(home, *args, env=stack_env(home, **extra))

    def wait_ready(self, timeout: float = 90.0) -> dict:
        try:
            return super().wait_ready(timeout)
        except RuntimeError as exc:
            pytest.fail(str(exc))


@pytest.fixture
def stack(tmp_path):
    s = Stack(tmp_path)
    yield s
    s.stop()


def test_stack_runs_the_examples_and_traffic_with_nothing_lost_or_doubled(stack, examples):
    state = stack.wait_ready()
    eps = state["endpoints"]
    assert set(eps) >= {"gateway_url", "kafka_bootstrap", "redis_url", "profile_service",
                        "api_url", "dashboard_url"}
    pids = list(state["processes"].values())
    assert set(state["processes"]) == {"broker", "redis", "postgres", "profiles", "bidder",
                                       "auctioneer", "gateway", "api"}
    assert probes.http_ok(eps["dashboard_url"] + "healthz")  # the API is up before any data
    assert all(psutil.pid_exists(p) for p in pids)
    assert eps["postgres_dsn"].startswith("postgresql://")

    seeded = helios(stack.env, "profiles", "seed", "--users", "2000", "--seed", "7")
    assert seeded.returncode == 0, seeded.stderr
    load = helios(stack.env, "load", "--rate", "300", "--duration", "4", "--users", "2000",
                  "--corpus", str(examples[0].parent), "--json")
    assert load.returncode == 0, load.stderr
    report = json.loads(load.stdout)
    assert report["accepted"] == 1200 and report["errors"] == 0 and report["rejected"] == 0

    # graceful restart of a service mid-stream: the supervisor brings it back, nothing lost
    bidder_pid = state["processes"]["bidder"]
    more = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "load", "--rate",
                             "300", "--duration", "4", "--json"], env=stack.env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1.5)  # let the second load get going before the restart
    os.kill(bidder_pid, signal.SIGTERM)
    assert wait_for(lambda: stack.state()["processes"]["bidder"] != bidder_pid, 30)
    second = json.loads(more.communicate(timeout=60)[0])
    assert second["accepted"] == 1200

    # #10: the same traffic as NDJSON bodies to /bids, counted per request
    batched = helios(stack.env, "load", "--rate", "300", "--duration", "2", "--batch", "50",
                     "--users", "2000", "--json")
    assert batched.returncode == 0, batched.stderr
    third = json.loads(batched.stdout)
    assert third["accepted"] == third["sent"] == 600
    assert third["errors"] == 0 and third["rejected"] == 0 and third["statuses"] == {"200": 12}

    audit = helios(stack.env, "audit", "--json", "--wait", "60")
    rep = json.loads(audit.stdout)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert rep["accepted"] == 3000
    assert rep["missing"] == 0 and rep["duplicated"] == 0
    assert rep["outcomes"]["total"] == rep["imps"]
    assert rep["dead_letters"] == 0

    # the seed system's metric names, on each service's /metrics
    import urllib.request

    def metrics(url: str) -> str:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()

    gw, bidder, auct = (metrics(eps[k]) for k in ("gateway_metrics", "bidder_metrics",
                                                   "auctioneer_metrics"))
    assert 'bid_requests_total{status="accepted"}' in gw and "kafka_publish_errors_total" in gw
    for name in ('bid_requests_processed_total{status="bid"}',
                 'user_profile_enrichment_total{status="found"}',
                 "user_profile_rpc_duration_seconds_count", "bid_price_distribution_usd_count",
                 'circuit_breaker_state{service="profile_service"}', "helios_dead_letters_total"):
        assert name in bidder, name
    assert 'auction_outcomes_total{outcome="won"}' in auct
    assert "profile_lookups_total" in metrics(eps["profile_metrics"])

    # services log JSON, one object per line, and never a request payload
    for service in ("gateway", "bidder", "auctioneer", "profiles"):
        lines = (stack.home / "logs" / f"{service}.log").read_text().splitlines()
        assert lines, service
        for line in lines:
            record = json.loads(line)
            assert {"ts", "level", "msg"} <= set(record), line
            assert '"imp"' not in line and "bidfloor" not in line, line

    assert stack.stop() == 0
    assert "restarting" in stack.output() and "bidder" in stack.output()
    assert wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), 10)
    assert stack.state()["status"] == "stopped"


def test_a_service_that_keeps_dying_stops_the_stack_naming_it(tmp_path):
    stack = Stack(tmp_path, HELIOS_RESTART_MAX="2")
    try:
        state = stack.wait_ready()
        port = int(state["endpoints"]["bidder_metrics"].split(":")[2].split("/")[0])
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        os.kill(state["processes"]["bidder"], signal.SIGKILL)
        # hold the bidder's status port so every restart fails
        assert wait_for(lambda: _bind(blocker, port), 5)
        blocker.listen()
        try:
            assert stack.proc.wait(90) != 0
        finally:
            blocker.close()
        out = stack.output()
        assert "bidder keeps dying" in out
        pids = state["processes"].values()
        assert wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), 10)
    finally:
        stack.stop()


def _bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def test_busy_port_is_one_line_naming_it(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = stack_env(tmp_path)
        res = helios(env, "up", "--kafka-port", str(port), timeout=60)
    assert res.returncode != 0
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert errors == [f"error: port {port} (kafka) is already in use: stop what holds it or "
                      f"choose another with --kafka-port or HELIOS_KAFKA_PORT"]
    assert "Traceback" not in res.stderr


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["serve", "nope"], {}, "unknown service 'nope'"),
        (["audit"], {"HELIOS_PARTITIONS": "abc"}, "HELIOS_PARTITIONS='abc'"),
        (["profiles", "seed", "--redis-url", "redis://127.0.0.1:1/0"], {}, "cannot reach Redis"),
        (["load", "--corpus", "/nonexistent", "--duration", "1"], {}, "--corpus"),
        (["load", "--diurnal", "weekly", "--duration", "1"], {}, "--diurnal 'weekly'"),
        (["up", "--gateway-port", "70000"], {},
         "--gateway-port 70000 (instead of HELIOS_GATEWAY_PORT)"),
        (["export", "--out", "x", "--from", "2026-12-02", "--to", "2026-12-01"], {},
         "--from 2026-12-02 is after --to 2026-12-01"),
        (["export", "--out", "/etc/hostname"], {}, "--out /etc/hostname is a file"),
        (["up", "--warehouse", "sqlite"], {},
         "--warehouse sqlite (instead of HELIOS_WAREHOUSE_BACKEND)"),
        (["status"], {"HELIOS_WAREHOUSE_BACKEND": "sqlite"}, "HELIOS_WAREHOUSE_BACKEND='sqlite'"),
        (["export", "--out", "x"], {"HELIOS_WAREHOUSE_BACKEND": "postgres"},
         "HELIOS_WAREHOUSE_BACKEND=postgres needs HELIOS_WAREHOUSE_DSN"),
    ],
)
def test_cli_errors_are_one_line_without_traceback(tmp_path, args, env, needle):
    res = helios({**stack_env(tmp_path), **env}, *args, timeout=60)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], res.stderr


def test_one_stack_per_home_and_status_down_logs_from_another_terminal(stack, tmp_path):
    """A second `helios up` on a running HELIOS_HOME refuses in one line and changes
    nothing; `status`, `logs`, `audit` find the running stack; `down` stops it."""
    state = stack.wait_ready()
    before = (stack.home / "stack.json").read_text()

    second = helios(stack_env(stack.home), "up", timeout=60)  # other ports, same home
    assert second.returncode != 0
    lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert any("already running" in ln and str(state["pid"]) in ln for ln in lines), lines
    assert "Traceback" not in second.stderr
    assert (stack.home / "stack.json").read_text() == before  # the live state is untouched

    status = helios(stack.env, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    rep = json.loads(status.stdout)
    assert len(status.stdout.splitlines()) == 1
    assert rep["running"] and rep["healthy"] and rep["pid"] == state["pid"]
    assert rep["processes"]["gateway"] is True

    logs = helios(stack.env, "logs", "gateway", "-n", "3")
    assert logs.returncode == 0 and 0 < len(logs.stdout.splitlines()) <= 3
    unknown = helios(stack.env, "logs", "nope")
    assert unknown.returncode == 2 and "gateway" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    env = {**stack.env, "HELIOS_KAFKA_PORT": "1"}  # ignored: the running stack is used
    audit = helios(env, "audit", "--json", "--wait", "1")
    assert f"audited Kafka at {state['endpoints']['kafka_bootstrap']} (from the stack" \
        in audit.stderr, audit.stderr

    down = helios(stack.env, "down")
    assert down.returncode == 0, down.stderr
    assert stack.proc.wait(30) == 0
    assert stack.state()["status"] == "stopped"
    gone = helios(stack.env, "status", "--json")
    assert gone.returncode == 1 and json.loads(gone.stdout)["running"] is False
    assert helios(stack.env, "down").stdout.startswith("no stack running")

    # no stack: the audit says plainly what it uses, and HELIOS_KAFKA_PORT moves it
    port = probes.free_port()
    audit = helios({**stack.env, "HELIOS_KAFKA_PORT": str(port)}, "audit", "--wait", "1")
    assert f"127.0.0.1:{port} (from the default (no stack running" in audit.stderr, \
        audit.stderr


def test_help_keeps_every_option_name_whole_at_80_columns(tmp_path):
    res = helios({**stack_env(tmp_path), "COLUMNS": "80"}, "up", "--help")
    assert res.returncode == 0
    for name in ("--auctioneer-metrics-port", "--profile-metrics-port",
                 "HELIOS_AUCTIONEER_METRICS_PORT", "HELIOS_PROFILE_METRICS_PORT", "--api-port"):
        assert name in res.stdout, name
    assert "…" not in res.stdout


def test_two_bidders_and_two_auctioneers_share_their_groups_and_survive_a_kill_9(tmp_path):
    """#10 `--replicas` (a consumer group scaled as a deployment scales it) and
    `--gateway-workers`, and #9: one
    bidder and one auctioneer killed with SIGKILL mid-load; their partitions move to the
    others, the supervisor restarts them, and the audit finds nothing missing."""
    s = Stack(tmp_path, "--replicas", "bidder=2,auctioneer=2", "--gateway-workers", "2")
    try:
        state = s.wait_ready()
        procs = state["processes"]
        workers = [p for p in psutil.Process(procs["gateway"]).children()
                   if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) == 2  # uvicorn's two worker processes under the gateway
        assert {"bidder", "bidder-2", "auctioneer", "auctioneer-2"} <= set(procs)
        assert probes.http_ok(state["endpoints"]["bidder_2_metrics"].replace("metrics", "readyz"))
        load = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "load", "--rate",
                                 "300", "--duration", "5", "--json"], env=s.env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(2)
        os.kill(procs["bidder-2"], signal.SIGKILL)
        os.kill(procs["auctioneer-2"], signal.SIGKILL)
        report = json.loads(load.communicate(timeout=60)[0])
        assert report["accepted"] == 1500 and report["errors"] == 0
        assert wait_for(lambda: s.state()["processes"]["bidder-2"] != procs["bidder-2"], 30)
        audit = helios(s.env, "audit", "--json", "--wait", "90")
        rep = json.loads(audit.stdout)  # a kill -9 may duplicate on the wire (at least once)
        assert rep["accepted"] == 1500 and rep["missing"] == 0, audit.stdout + audit.stderr
        assert rep["outcomes"]["total"] >= rep["imps"]
    finally:
        assert s.stop() == 0
    bad = helios(stack_env(tmp_path / "other"), "up", "--replicas", "bidder=two")
    assert bad.returncode == 2 and "--replicas" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
