"""Real servers on free 127.0.0.1 ports, and headless Chromium, for the tests and the benchmarks.

Each starts on a free 127.0.0.1 port; whoever starts one stops it by PID (Server.stop).
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from helios_pipeline.stack import binaries, probes


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _start(name: str, argv: list[str], port: int, log: Path) -> Server:
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    server = Server(name, port, proc)
    if not probes.wait_until(lambda: probes.tcp_open(port) or proc.poll() is not None, 20):
        server.stop()
        raise RuntimeError(f"{name} did not start on port {port}; see {log}")
    if proc.poll() is not None:
        raise RuntimeError(f"{name} exited with {proc.returncode}; see {log}")
    return server


def start_tansu(tmp: Path) -> Server:
    port = probes.free_port()
    url = f"tcp://127.0.0.1:{port}"
    return _start("tansu", [str(binaries.tansu()), "broker", "--listener-url", url,
                            "--advertised-listener-url", url,
                            "--storage-engine", "memory://tansu/"], port, tmp / "tansu.log")


def start_redis(tmp: Path) -> Server:
    port = probes.free_port()
    return _start("redis", [str(binaries.redis_server()), "--bind", "127.0.0.1",
                            "--port", str(port), "--save", "", "--appendonly", "no",
                            "--dir", str(tmp)], port, tmp / f"redis-{port}.log")


def wait_for(check, timeout: float = 20.0, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return False


# Debian's headless Chromium for the page tests and the dashboard benchmark. Never a browser
# download of a test tool's own; without the background-networking flags it keeps trying to
# reach Google on this offline machine.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def launch_chromium(playwright):
    """A headless Chromium driven by playwright (``sync_playwright()`` handle)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)
