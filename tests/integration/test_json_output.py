"""``--json`` output of ``helios load`` and ``helios audit``: exactly one line of plain JSON,
whatever the terminal width, whether stdout is a pipe or a terminal."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from helios_pipeline.loadgen import LoadReport

pytestmark = pytest.mark.integration

COLUMNS = 40
AUDIT_KEYS = {"accepted", "imps", "outcomes", "dead_letters", "missing", "duplicated", "kpis"}


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    env.update(HELIOS_HOME=str(home), COLUMNS=str(COLUMNS), LINES="20", TERM="xterm-256color",
               **extra)
    return env


def run_cli(env: dict[str, str], *args: str, tty: bool, timeout: float = 60) -> tuple[int, str]:
    """Run ``helios <args>``; stdout is a pipe or a COLUMNS-wide pseudo-terminal."""
    argv = [sys.executable, "-m", "helios_pipeline.cli", *args]
    if not tty:
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=timeout)
        return proc.returncode, proc.stdout.decode()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 20, COLUMNS, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # keep "\n" as written (no "\r\n" translation)
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    try:
        proc = subprocess.Popen(argv, env=env, stdout=slave, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        os.close(slave)
        slave = -1
        chunks = []
        while True:  # read until the child closes the terminal (EIO on Linux)
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return proc.wait(timeout), b"".join(chunks).decode()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)


def assert_one_json_line(stdout: str) -> dict:
    assert stdout.endswith("\n") and stdout.count("\n") == 1, repr(stdout)
    assert "\x1b" not in stdout, repr(stdout)  # no colour codes
    doc = json.loads(stdout)
    assert isinstance(doc, dict)
    assert len(stdout) > COLUMNS  # long enough that wrapping at the terminal width would show
    return doc


class _Gateway(BaseHTTPRequestHandler):
    """Answers every bid request 202, as the real gateway does for a valid one."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def tiny_gateway() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
def test_load_json_is_one_plain_line(tiny_gateway, tmp_path, tty):
    code, stdout = run_cli(cli_env(tmp_path), "load", "--url", tiny_gateway, "--rate", "40",
                           "--duration", "0.5", "--connections", "4", "--users", "50",
                           "--json", tty=tty)
    assert code == 0, stdout
    report = assert_one_json_line(stdout)
    assert set(report) == {f.name for f in dataclasses.fields(LoadReport)}
    assert report["sent"] == report["accepted"] == 20
    assert report["errors"] == 0 and report["rejected"] == 0
    assert set(report["latency_ms"]) == {"p50", "p90", "p99", "max"}


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
def test_audit_json_is_one_plain_line(settings, tmp_path, tty):
    env = cli_env(tmp_path, HELIOS_TOPIC_REQUESTS=settings.topic_requests,
                  HELIOS_TOPIC_RESPONSES=settings.topic_responses,
                  HELIOS_TOPIC_OUTCOMES=settings.topic_outcomes)
    code, stdout = run_cli(env, "audit", "--json", "--wait", "10",
                           "--bootstrap", settings.kafka_bootstrap, tty=tty)
    assert code == 0, stdout
    rep = assert_one_json_line(stdout)
    assert set(rep) >= AUDIT_KEYS
    assert rep["accepted"] == 0 and rep["missing"] == 0 and rep["duplicated"] == 0
    assert rep["outcomes"]["total"] == 0 and rep["dead_letters"] == 0
