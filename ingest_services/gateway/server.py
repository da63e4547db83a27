"""Runs the gateway app under an HTTP server: uvicorn or granian, N worker processes.

Which server: ``HELIOS_GATEWAY_SERVER``. Both serve the same ASGI app (:func:`create_app`:
the FastAPI routes and OpenAPI, with the /bid and /bids fast path in front), so the choice
changes only the protocol code in front of it; ``python -m bench.run`` measures both in
one run (bench/README.md has the figures behind the default).

Several workers are several processes, each with its own Prometheus registry: without a
shared store, ``/metrics`` would show whichever worker answered. With more than one worker
the counters go to prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
set here before any worker starts: each worker writes its values to files there, and
``/metrics`` sums them over workers). The directory is ``HELIOS_GATEWAY_METRICS_DIR`` or a
fresh temporary one, emptied at start (counts from a previous run must not add up).

The default is one worker (HELIOS_GATEWAY_WORKERS=1); 0 asks for one per usable core. Not
more by default because on the embedded Tansu two producers writing into the same
partitions lost records in the benchmark (docs/operations.md, bench/README.md, #10).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ingest_services.settings import GatewaySettings

APP = "ingest_services.gateway.app:create_app"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def default_workers() -> int:
    """What suits the machine: one worker per core the process may use, at least 1, at
    most 8 (the broker and the pipeline need cores too: see docs/operations.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def prepare_metrics_dir(s: GatewaySettings, workers: int) -> Path | None:
    """With ``workers`` > 1: an empty directory for multiprocess metrics, exported as
    PROMETHEUS_MULTIPROC_DIR for the workers; with one worker, nothing (plain registry)."""
    if workers <= 1:
        return None
    if s.gateway_metrics_dir:
        path = Path(s.gateway_metrics_dir)
        if path.exists():
            for f in path.glob("*.db"):
                f.unlink()
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix="helios-gateway-metrics-"))
    os.environ[MULTIPROC_ENV] = str(path)
    return path


def run(s: GatewaySettings, port: int | None = None, workers: int | None = None) -> None:
    n = workers or s.gateway_workers or default_workers()
    metrics_dir = prepare_metrics_dir(s, n)
    try:
        if s.gateway_server == "granian":
            _granian(s, port or s.gateway_port, n)
        else:
            _uvicorn(s, port or s.gateway_port, n)
    finally:
        if metrics_dir is not None and not s.gateway_metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _uvicorn(s: GatewaySettings, port: int, workers: int) -> None:
    import uvicorn

    uvicorn.run(APP, factory=True, host=s.bind_host, port=port, workers=workers,
                access_log=False, log_config=None, timeout_graceful_shutdown=10)


def _granian(s: GatewaySettings, port: int, workers: int) -> None:
    from granian.constants import Interfaces
    from granian.server import Server

    Server(APP, address=s.bind_host, port=port, interface=Interfaces.ASGI, workers=workers,
           factory=True, log_enabled=False, workers_kill_timeout=10).serve()
