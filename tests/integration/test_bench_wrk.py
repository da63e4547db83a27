"""bench/wrk.py, the API benchmark's load generator, against a real HTTP server: every path
of the list is asked, non-2xx answers are counted as errors, and the latency it reports is
the server's (each answer here takes at least 5 ms)."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench import wrk

pytestmark = pytest.mark.skipif(not wrk.available(),
                                reason=f"wrk is not installed ({wrk.INSTALL_HINT})")
DELAY_S = 0.005


@pytest.fixture
def server():
    asked: Counter[str] = Counter()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as wrk's connections are

        def do_GET(self) -> None:
            asked[self.path] += 1
            time.sleep(DELAY_S)
            body = b"{}"
            self.send_response(404 if self.path.endswith("/bad") else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            # wrk is interrupted with requests in flight: a reset connection is expected
            if not isinstance(sys.exc_info()[1], ConnectionError):
                super().handle_error(request, client_address)

    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", asked
    finally:
        httpd.shutdown()
        thread.join(5)


def test_each_path_is_asked_and_the_latency_is_the_servers(server):
    url, asked = server
    paths = [f"/p/{i}" for i in range(200)]
    t0 = time.monotonic()
    r = wrk.closed_loop(url, paths, 4, cap_s=30)
    assert time.monotonic() - t0 < 20  # stops when the list is answered, not at the cap
    assert set(asked) == set(paths)
    # answers counted: the list, plus at most the requests in flight when it ended
    assert len(paths) <= r["n"] <= len(paths) + 4 and "errors" not in r
    assert sum(asked.values()) <= len(paths) + 4
    assert DELAY_S * 1000 <= r["p50_ms"] <= r["p99_ms"] <= r["max_ms"] < 1000  # ms, not µs


def test_non_2xx_answers_are_counted_as_errors(server):
    url, _asked = server
    r = wrk.closed_loop(url, [f"/p/{i}" for i in range(40)] + ["/p/bad"] * 10, 1, cap_s=30)
    assert r["errors"] == 10 and r["n"] == 40


def test_all_failing_is_an_error(server):
    url, _asked = server
    with pytest.raises(RuntimeError, match="every call failed"):
        wrk.closed_loop(url, ["/x/bad"] * 5, 2, cap_s=10)


def test_no_server_is_a_clear_error():
    with pytest.raises(RuntimeError, match=r"wrk failed .*(connect|refused)"):
        wrk.closed_loop("http://127.0.0.1:9", ["/p"], 1, cap_s=5)
