"""Fault injection on the real stack: `helios up` with Dagster, steady load through the
gateway, ``kill -9`` of the bidder and then of the auctioneer mid-load (the supervisor
restarts each), then `helios audit`: nothing missing on the wire or in the warehouse,
nothing doubled in the warehouse (wire duplicates from the kills are allowed and counted).

About 80 s on a busy two-core machine (a Dagster stack and a sensor-driven ingest); part
of the main suite; alone: ``pytest -m faults tests/integration``.
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


@pytest.mark.timeout(600)
def test_kill9_of_bidder_and_auctioneer_under_load_loses_and_doubles_nothing(tmp_path):
    stack = Stack(tmp_path, HELIOS_DAGSTER="true", HELIOS_POSTGRES="false")
    try:
        stack.wait_ready()
        seeded = helios(stack.env, "profiles", "seed", "--users", "500", "--seed", "7")
        assert seeded.returncode == 0, seeded.stderr
        load = subprocess.Popen(
            [sys.executable, "-m", "helios_pipeline.cli", "load", "--rate", str(RATE),
             "--duration", str(SECONDS), "--users", "500", "--json"],
            env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(SECONDS * 0.25)
        kill9_and_wait_for_restart(stack, "bidder")
        time.sleep(SECONDS * 0.25)
        kill9_and_wait_for_restart(stack, "auctioneer")
        out, err = load.communicate(timeout=SECONDS + 120)
        assert load.returncode == 0, err
        report = json.loads(out)
        # the gateway was never killed: every request sent got its 202
        assert report["errors"] == 0 and report["rejected"] == 0, report
        assert report["accepted"] > RATE * SECONDS * 0.5, report

        audit = helios(stack.env, "audit", "--json", "--wait", "240", timeout=400)
        rep = json.loads(audit.stdout)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert rep["accepted"] == report["accepted"]
        assert rep["missing"] == 0 and rep["dead_letters"] == 0
        wh = rep["warehouse"]
        assert wh["checked"] is True, wh
        assert wh["missing"] == 0 and wh["duplicated"] == 0, wh
        assert wh["rows"] >= rep["imps"]
        # what the kills cost on the wire: reported, allowed, collapsed in the warehouse
        print(f"faults: accepted={rep['accepted']} imps={rep['imps']} "
              f"wire_duplicated={rep['duplicated']} warehouse_rows={wh['rows']}")
        for name in ("bidder", "auctioneer"):  # the supervisor saw the kill and restarted
            assert f"{name} exited with code -9; restarting" in stack.output(), stack.output()
    finally:
        assert stack.stop() == 0
