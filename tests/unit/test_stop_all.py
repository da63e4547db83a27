"""`helios up` stops what its children started, too (issue #9: a Dagster code server and
multiprocessing's resource tracker could outlive the stack)."""

import subprocess
import sys
import time

from helios_pipeline.stack.supervisor import _alive, descendants, stop_all

# a parent that starts a grandchild ignoring SIGTERM and not told of its parent's death
PARENT = """
import signal, subprocess, sys, time
subprocess.Popen([sys.executable, "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
time.sleep(600)
"""


def test_grandchildren_left_by_a_stopped_child_are_stopped_even_if_they_ignore_sigterm():
    parent = subprocess.Popen([sys.executable, "-c", PARENT])
    try:
        deadline = time.monotonic() + 60  # two interpreters starting on a busy 2-core machine
        while not (spawned := descendants(parent.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(spawned) == 1
        parent.terminate()  # the child stops; its own child does not go with it
        parent.wait(60)
        orphan = spawned[0]
        assert orphan.is_running()
        described = f"{orphan.name()} (pid {orphan.pid})"
        left = stop_all(spawned, grace=1.0)  # SIGTERM ignored: SIGKILL after the grace
        assert left == [described]
        assert not _alive(orphan)  # gone (or a zombie waiting for its reaper)
        assert stop_all(spawned, grace=1.0) == []  # nothing left: nothing to report
    finally:
        parent.kill()
