"""Starting and stopping a whole `helios up` from another program: the benchmarks that need a
live stack (bench/soak.py, bench/broker_memory.py) and the tests' ``Stack`` use it, so each
does not grow its own start loop, port picking and SIGTERM-then-kill.

``isolated_env`` gives a stack its own HELIOS_HOME and a distinct free port for every port
setting (two ``free_port()`` calls can return the same port, which once made a CI run
refuse to start: "port … is given to both bidder metrics and Dagster UI").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from helios_pipeline.stack import probes
from helios_pipeline.stack.supervisor import PORT_FLAGS

PORT_VARS = tuple(f"HELIOS_{attr.upper()}" for attr in PORT_FLAGS)


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without its HELIOS_* settings, plus ``home`` and a
    distinct free port for each port setting, then ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env["HELIOS_HOME"] = str(home)
    ports: set[int] = set()
    while len(ports) < len(PORT_VARS):
        ports.add(probes.free_port())
    env.update(zip(PORT_VARS, map(str, sorted(ports)), strict=True))
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen, grace: float = 120.0) -> int | None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; the exit code (None if it was gone)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class LaunchedStack:
    """`helios up *args` in the background, its output in ``home/up.out``."""

    def __init__(self, home: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.home = home
        self.env = env if env is not None else isolated_env(home)
        self.log = open(home / "up.out", "w")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "up", *args],
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)

    def state(self) -> dict:
        try:
            return json.loads((self.home / "stack.json").read_text())
        except (OSError, ValueError):
            return {}

    def output(self) -> str:
        return (self.home / "up.out").read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> dict:
        """stack.json once it says ready; ``RuntimeError`` with the output's tail if
        `helios up` exits or is not ready in time."""
        probes.wait_until(lambda: self.state().get("status") == "ready"
                          or self.proc.poll() is not None, timeout)
        if self.proc.poll() is not None or self.state().get("status") != "ready":
            raise RuntimeError(f"helios up in {self.home} did not become ready "
                               f"(exit {self.proc.poll()}): {self.output()[-2000:]}")
        return self.state()

    def stop(self, grace: float = 120.0) -> int | None:
        code = stop_process(self.proc, grace)
        self.log.close()
        return code
