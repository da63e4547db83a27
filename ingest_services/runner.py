"""Entry points for ``helios serve <service>``: one service per process, as a pod runs it.

Each runs in the foreground until SIGINT/SIGTERM, then stops gracefully: consumers finish
the batch in hand, producers flush, offsets are committed, the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from ingest_services.common.logs import setup_logging
from ingest_services.settings import (
    SERVICE_SETTINGS,
    AuctioneerSettings,
    BidderSettings,
    GatewaySettings,
    ProfileSettings,
    load_settings,
)

log = logging.getLogger("helios.serve")

SERVICES = tuple(SERVICE_SETTINGS)


def _on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, _frame: object) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_gateway(s: GatewaySettings, port: int | None = None, workers: int | None = None) -> None:
    from ingest_services.gateway import server

    server.run(s, port, workers)


def _run_worker(s: BidderSettings | AuctioneerSettings, service: str, metrics_port: int,
                build) -> None:
    from ingest_services.common.http_status import serve_status
    from ingest_services.common.kafka import ensure_topics

    if s.create_topics:  # Tansu never auto-creates; a fresh cluster needs them up front
        ensure_topics(s)
    worker, cleanup = build()
    status = serve_status(metrics_port, ready=worker.ready.is_set, host=s.bind_host)
    _on_signals(worker.stop)
    try:
        worker.run()
    finally:
        cleanup()
        status.shutdown()


def run_bidder(s: BidderSettings) -> None:
    from ingest_services.bidder.handler import BidderHandler
    from ingest_services.common.circuit import CircuitBreaker
    from ingest_services.common.stream_worker import StreamWorker
    from ingest_services.profiles.client import ProfileClient

    def build():
        breaker = CircuitBreaker(s.breaker_failures, s.breaker_reset_s)
        client = ProfileClient(s.profile_addr, s.profile_timeout_ms / 1000, breaker)
        handler = BidderHandler(client, s.topic_responses)
        worker = StreamWorker(
            s, "bidder", s.topic_requests, s.bidder_group, handler, s.bidder_batch_size
        )
        return worker, client.close

    _run_worker(s, "bidder", s.bidder_metrics_port, build)


def run_auctioneer(s: AuctioneerSettings) -> None:
    from ingest_services.auctioneer.handler import AuctioneerHandler
    from ingest_services.common.stream_worker import StreamWorker

    def build():
        handler = AuctioneerHandler(s, s.topic_outcomes)
        worker = StreamWorker(
            s, "auctioneer", s.topic_responses, s.auctioneer_group, handler,
            s.auctioneer_batch_size,
        )
        return worker, lambda: None

    _run_worker(s, "auctioneer", s.auctioneer_metrics_port, build)


def run_profiles(s: ProfileSettings) -> None:
    from ingest_services.common.http_status import serve_status
    from ingest_services.profiles.service import build_server

    server, stop_health = build_server(s.redis_url, f"{s.bind_host}:{s.profile_port}")
    status = serve_status(s.profile_metrics_port, ready=lambda: True, host=s.bind_host)
    done = threading.Event()
    _on_signals(done.set)
    log.info("profile service ready", extra={"port": s.profile_port})
    done.wait()
    stop_health.set()
    server.stop(grace=5).wait()
    status.shutdown()


def serve(service: str, s=None) -> None:
    """Run ``service``; ``s`` defaults to that service's own settings group."""
    s = s or load_settings(SERVICE_SETTINGS[service])
    setup_logging(s.log_level)
    {
        "gateway": run_gateway,
        "bidder": run_bidder,
        "auctioneer": run_auctioneer,
        "profiles": run_profiles,
    }[service](s)
