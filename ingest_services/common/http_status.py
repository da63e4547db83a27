"""A tiny HTTP endpoint for the non-HTTP services: ``/metrics``, ``/healthz``, ``/readyz``.

Probes and Prometheus need these on the bidder and auctioneer too; a thread with the
standard library's server is enough and keeps the services free of a web framework.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


def serve_status(
    port: int, ready: Callable[[], bool], host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                body, ctype, code = generate_latest(), CONTENT_TYPE_LATEST, 200
            elif self.path == "/healthz":
                body, ctype, code = b'{"status":"ok"}', "application/json", 200
            elif self.path == "/readyz":
                ok = ready()
                body = b'{"status":"ready"}' if ok else b'{"status":"not ready"}'
                ctype, code = "application/json", 200 if ok else 503
            else:
                body, ctype, code = b"not found", "text/plain", 404
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="status-http", daemon=True).start()
    return server
