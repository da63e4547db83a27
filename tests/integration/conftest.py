"""Session-wide real servers and per-test topics/settings for integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from helios_pipeline.stack import probes
from helios_pipeline.stack.servers import Server, start_redis, start_tansu
from ingest_services.common.kafka import ensure_topics, reader_config
from ingest_services.profiles import store
from ingest_services.profiles.seed import load_into_redis
from ingest_services.profiles.service import build_server
from ingest_services.settings import Settings, load_settings

SEED_USERS = 200


@pytest.fixture(scope="session")
def tansu(tmp_path_factory) -> Iterator[Server]:
    server = start_tansu(tmp_path_factory.mktemp("tansu"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory) -> Iterator[Server]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    client = store.connect(f"redis://127.0.0.1:{server.port}/0")
    load_into_redis(client, SEED_USERS, seed=7)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def profile_service(redis_server) -> Iterator[str]:
    port = probes.free_port()
    server, stop = build_server(f"redis://127.0.0.1:{redis_server.port}/0", f"127.0.0.1:{port}")
    yield f"127.0.0.1:{port}"
    stop.set()
    server.stop(grace=1).wait()


@pytest.fixture
def settings(tansu, redis_server, profile_service) -> Settings:
    """Settings pointing at the real servers, with topics unique to this test."""
    tag = uuid.uuid4().hex[:10]
    s = load_settings(
        kafka_bootstrap=f"127.0.0.1:{tansu.port}",
        redis_url=f"redis://127.0.0.1:{redis_server.port}/0",
        profile_addr=profile_service,
        topic_requests=f"req-{tag}",
        topic_responses=f"resp-{tag}",
        topic_outcomes=f"out-{tag}",
        bidder_group=f"bidder-{tag}",
        auctioneer_group=f"auctioneer-{tag}",
        partitions=3,
        session_timeout_ms=2000,
        heartbeat_interval_ms=200,
        gateway_ack_timeout_s=5.0,
    )
    ensure_topics(s)
    return s


def read_all(s: Settings, topic: str, expect: int | None = None, idle_s: float = 1.5,
             timeout: float = 30.0) -> list:
    """Every message on ``topic`` from the beginning (until ``expect`` or idle)."""
    import time

    c = Consumer(reader_config(s, f"test-reader-{uuid.uuid4().hex[:6]}"))
    md = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.topics[topic].partitions])
    out: list = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = [m for m in c.consume(1000, 0.2) if m.error() is None]
            out += batch
            if batch:
                last = time.monotonic()
            if expect is not None and len(out) >= expect:
                # linger briefly to catch anything beyond what was expected (duplicates)
                out += [m for m in c.consume(1000, 0.5) if m.error() is None]
                break
            if expect is None and time.monotonic() - last > idle_s:
                break
    finally:
        c.close()
    return out


def produce(s: Settings, topic: str, records: list[tuple[str, bytes]]) -> None:
    p = Producer({"bootstrap.servers": s.kafka_bootstrap, "enable.idempotence": True,
                  "linger.ms": 5})
    for key, value in records:
        p.produce(topic, value, key)
    assert p.flush(15) == 0


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """A real PostgreSQL 16 (pgserver wheel) for the session; stopped at the end."""
    import pgserver

    pgdata = tmp_path_factory.mktemp("pg") / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    yield server, pgdata
    server.cleanup()
