"""Session-wide real servers and per-test topics/settings for integration tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class WarehouseSpec:
    """Where one test's warehouse lives: a DuckDB file, or a PostgreSQL schema of its own on
    the session's server (so tests stay independent). Picklable: a crash test hands it to a
    child process."""

    backend: str
    path: str = ""
    dsn: str = ""
    schema: str = ""

    def open(self, read_only: bool = False):
        from helios_pipeline.warehouse.backend import open_warehouse

        return open_warehouse(self.backend, self.path, self.dsn, read_only, self.schema or None)

    def resource(self):
        from helios_pipeline.resources import WarehouseResource

        return WarehouseResource(backend=self.backend, path=self.path, dsn=self.dsn,
                                 pg_schema=self.schema)


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_backend(request, tmp_path) -> WarehouseSpec:
    """Each warehouse test runs on both backends (HELIOS_WAREHOUSE_BACKEND)."""
    if request.param == "postgres":
        server, _ = request.getfixturevalue("pg_server")
        return WarehouseSpec("postgres", dsn=server.get_uri(),
                             schema=f"wh_{uuid.uuid4().hex[:12]}")
    return WarehouseSpec("duckdb", path=str(tmp_path / "wh.duckdb"))


@pytest.fixture(scope="session")
def pipeline(tansu, redis_server, profile_service, tmp_path_factory):
    """A warehouse filled by the real pipeline (gateway envelopes → bidder → auctioneer →
    exactly-once ingest → serving_snapshot), and the rid of one request sent by us."""
    import random

    import dagster as dg
    import orjson

    from assets.serving import serving_snapshot
    from assets.warehouse import outcomes
    from helios_pipeline.loadgen import make_request
    from tests.integration.test_dagster import RAW, resources
    from tests.integration.test_pipeline import auctioneer, bidder, envelopes, running

    tag = uuid.uuid4().hex[:10]
    s = load_settings(
        kafka_bootstrap=f"127.0.0.1:{tansu.port}",
        redis_url=f"redis://127.0.0.1:{redis_server.port}/0", profile_addr=profile_service,
        topic_requests=f"req-{tag}", topic_responses=f"resp-{tag}", topic_outcomes=f"out-{tag}",
        bidder_group=f"bidder-{tag}", auctioneer_group=f"auctioneer-{tag}", partitions=3,
        session_timeout_ms=2000, heartbeat_interval_ms=200)
    ensure_topics(s)
    rng = random.Random(5)
    raws = [orjson.dumps(make_request(rng, f"api{i}", SEED_USERS)) for i in range(400)]
    mine = orjson.dumps({"id": "story-1", "at": 1, "cur": ["USD"],
                         "imp": [{"id": "a", "banner": {"w": 300, "h": 250}, "bidfloor": 0.01},
                                 {"id": "b", "video": {"mimes": ["video/mp4"]},
                                  "bidfloor": 99.0}],
                         "site": {"domain": "story.example.com"}, "user": {"id": "u00000001"}})
    reqs = envelopes([*raws, mine])
    produce(s, s.topic_requests, [(rid, v) for rid, v, _ in reqs])
    imps = sum(len(i) for _, _, i in reqs)
    with running(bidder(s), auctioneer(s)):
        read_all(s, s.topic_outcomes, expect=imps, timeout=90)
    tmp = tmp_path_factory.mktemp("api")
    db = tmp / "wh.duckdb"
    rs = resources(s, db)
    res = dg.materialize([*RAW, outcomes, serving_snapshot], resources=rs)
    assert res.success
    return {"settings": s, "db": db, "serving": Path(rs["paths"].serving), "imps": imps,
            "my_rid": reqs[-1][0]}


@pytest.fixture(scope="session")
def pipeline_pg(pipeline, pg_server, tmp_path_factory):
    """The ``pipeline`` fixture's topics ingested again, into a PostgreSQL warehouse (a schema
    of its own), and its serving snapshot: same assets, HELIOS_WAREHOUSE_BACKEND=postgres."""
    import dagster as dg

    from assets.serving import serving_snapshot
    from assets.warehouse import outcomes
    from tests.integration.test_dagster import RAW, resources

    server, _ = pg_server
    wh = WarehouseSpec("postgres", dsn=server.get_uri(), schema="pipeline_pg")
    tmp = tmp_path_factory.mktemp("api-pg")
    rs = resources(pipeline["settings"], tmp / "unused.duckdb", wh)
    assert dg.materialize([*RAW, outcomes, serving_snapshot], resources=rs).success
    return {"warehouse": wh, "serving": Path(rs["paths"].serving)}


def _serve_api(serving: Path, tmp: Path):
    import os
    import subprocess
    import sys

    port = probes.free_port()
    env = {**os.environ, "HELIOS_SERVING_PATH": str(serving), "HELIOS_API_PORT": str(port),
           "HELIOS_HOME": str(tmp)}
    log = open(tmp / "api.log", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "serve", "api"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    if not probes.wait_until(lambda: probes.http_ok(f"{url}/healthz"), 30):
        proc.kill()
        raise RuntimeError(f"the API did not start; see {tmp / 'api.log'}")
    return proc, url


@pytest.fixture(scope="session")
def api_server(pipeline, tmp_path_factory) -> Iterator[str]:
    """`helios serve api` (a real process) over the pipeline's serving snapshot."""
    proc, url = _serve_api(pipeline["serving"], tmp_path_factory.mktemp("api-live"))
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def api_empty_server(tmp_path_factory) -> Iterator[str]:
    """`helios serve api` before anything was published: the empty state."""
    tmp = tmp_path_factory.mktemp("api-empty")
    proc, url = _serve_api(tmp / "serving.duckdb", tmp)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Real headless Chromium (Debian's package; `.ci/run` installs it). Without it the page
    tests report themselves skipped with that reason: they never pass without a browser."""
    from helios_pipeline.stack.servers import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        yield b
        b.close()
