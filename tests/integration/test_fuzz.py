"""Fuzzing (issue #9): bad input gets a clear error and never a 5xx.

- Property-based mutations of the real OpenRTB requests in ../shared (hypothesis): a value
  replaced anywhere in the tree by any JSON value, a key dropped or added, the bytes cut,
  spliced or corrupted; posted to the real gateway (in process, over a real Tansu broker)
  one by one to ``/bid`` and as NDJSON bodies to ``/bids``.
- schemathesis over the OpenAPI of the gateway and of the analytics API (a live process
  over a real serving snapshot): every operation, generated parameters and bodies.

Together well over 10,000 cases per run. Any failure hypothesis finds is shrunk and printed
with its seed: keep it as a regression fixture in tests/fixtures/invalid/.
"""

from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

import orjson
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest_services.gateway.app import create_app
from ingest_services.settings import load_settings
from tests.conftest import EXAMPLES

pytestmark = pytest.mark.integration

SEEDS = [orjson.loads(p.read_bytes()) for p in sorted(Path(EXAMPLES).glob("*.json"))]
MUTATIONS_BID = 7000
MUTATIONS_BIDS = 800

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


def paths(node, prefix=()):
    """Every (path, value) in a JSON tree, the root included."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


def encode(tree) -> bytes:
    """JSON with integers of any size (orjson stops at 64 bits; the gateway must not)."""
    return json.dumps(tree, ensure_ascii=False).encode()


def replaced(tree, path, value):
    if not path:
        return value
    tree = copy.deepcopy(tree)
    node = tree
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return tree


def dropped(tree, path):
    tree = copy.deepcopy(tree)
    node = tree
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return tree


@st.composite
def mutated_requests(draw) -> bytes:
    seed = draw(st.sampled_from(SEEDS))
    spots = list(paths(seed))
    kind = draw(st.sampled_from(["replace", "replace", "drop", "add", "bytes"]))
    if kind == "replace":
        path, _ = draw(st.sampled_from(spots))
        return encode(replaced(seed, path, draw(json_values)))
    if kind == "drop":
        keyed = [p for p, _ in spots if p]
        return encode(dropped(seed, draw(st.sampled_from(keyed))))
    if kind == "add":
        objects = [p for p, v in spots if isinstance(v, dict)]
        path = draw(st.sampled_from(objects))
        node = dict(next(v for p, v in spots if p == path))
        node[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        return encode(replaced(seed, path, node))
    raw = bytearray(orjson.dumps(seed))
    at = draw(st.integers(0, len(raw)))
    op = draw(st.sampled_from(["cut", "insert", "flip"]))
    if op == "cut":
        return bytes(raw[:at])
    if op == "insert":
        return bytes(raw[:at] + draw(st.binary(min_size=1, max_size=8)) + raw[at:])
    if at < len(raw):
        raw[at] ^= draw(st.integers(1, 255))
    return bytes(raw)


@pytest.fixture(scope="module")
def gateway(tansu):
    tag = uuid.uuid4().hex[:10]
    s = load_settings(kafka_bootstrap=f"127.0.0.1:{tansu.port}", topic_requests=f"fz-{tag}",
                      topic_responses=f"fz-resp-{tag}", topic_outcomes=f"fz-out-{tag}",
                      gateway_max_body_bytes=64 * 1024)
    from ingest_services.common.kafka import ensure_topics

    ensure_topics(s)
    with TestClient(create_app(s)) as client:
        yield client


def clear_error(resp) -> None:
    """A 4xx names the problem: the gateway's error shape, a field path and a reason."""
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if resp.status_code >= 400:
        body = resp.json()
        assert body.get("reason") or body.get("detail"), body
        if resp.status_code == 400:
            assert "field" in body, body


def test_mutated_real_requests_get_202_or_a_clear_4xx_never_a_5xx(gateway):
    @settings(max_examples=MUTATIONS_BID, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), database=None)
    @given(body=mutated_requests())
    def one(body: bytes) -> None:
        resp = gateway.post("/bid", content=body)
        assert resp.status_code in (202, 400, 413), (resp.status_code, body[:200])
        clear_error(resp)

    one()


def test_mutated_ndjson_batches_account_for_every_line(gateway):
    @settings(max_examples=MUTATIONS_BIDS, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck), database=None)
    @given(lines=st.lists(mutated_requests(), min_size=1, max_size=6))
    def one(lines: list[bytes]) -> None:
        body = b"\n".join(line.replace(b"\n", b" ") for line in lines)
        resp = gateway.post("/bids", content=body,
                            headers={"content-type": "application/x-ndjson"})
        clear_error(resp)
        if resp.status_code == 200:
            answer = resp.json()
            seen = answer["accepted"] + len(answer["rejected"]) + len(answer["failed"])
            assert seen == sum(1 for line in body.split(b"\n") if line.strip()), answer
            assert all(r.get("field") is not None and r.get("reason") for r in
                       answer["rejected"]), answer["rejected"][:2]

    one()


@pytest.fixture(scope="module")
def gateway_process(tansu, tmp_path_factory):
    """`helios serve gateway` as a pod runs it, on a free port, over the real broker."""
    import os
    import subprocess
    import sys

    from helios_pipeline.stack import probes
    from helios_pipeline.stack.servers import wait_for

    port = probes.free_port()
    tag = uuid.uuid4().hex[:10]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")},
           "HELIOS_KAFKA_BOOTSTRAP": f"127.0.0.1:{tansu.port}", "HELIOS_GATEWAY_PORT": str(port),
           "HELIOS_TOPIC_REQUESTS": f"fz-svc-{tag}", "HELIOS_LOG_LEVEL": "WARNING",
           "HELIOS_HOME": str(tmp_path_factory.mktemp("fuzz-gateway"))}
    from ingest_services.common.kafka import ensure_topics

    ensure_topics(load_settings(kafka_bootstrap=env["HELIOS_KAFKA_BOOTSTRAP"],
                                topic_requests=env["HELIOS_TOPIC_REQUESTS"]))
    proc = subprocess.Popen([sys.executable, "-m", "helios_pipeline.cli", "serve", "gateway"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: probes.http_ok(f"{url}/readyz"), 60)
    yield url
    proc.terminate()
    proc.wait(15)


@schemathesis.serializer("application/x-ndjson")
def ndjson(_ctx, value) -> bytes:
    """/bids bodies: the generated value as NDJSON lines (a list: one line per item)."""
    items = value if isinstance(value, list) else [value]
    return b"\n".join(encode(item) for item in items)


def fuzz(schema, max_examples: int, check) -> int:
    """Every operation of ``schema``, ``max_examples`` generated calls each (schemathesis's
    strategies driven by hypothesis); ``check(case, response)`` on each. Returns the calls."""
    calls = 0

    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def one(case) -> None:
            nonlocal calls
            calls += 1
            check(case, case.call())

        one()
    return calls


def test_gateway_openapi_never_answers_5xx(gateway_process):
    schema = schemathesis.openapi.from_url(f"{gateway_process}/openapi.json")

    def check(case, resp) -> None:
        assert resp.status_code < 500, (case.method, case.path, resp.status_code,
                                        resp.text[:300])

    assert fuzz(schema, 300, check) > 500  # probes without parameters end early


def test_api_openapi_never_answers_5xx_and_422s_name_the_parameter(api_server):
    schema = schemathesis.openapi.from_url(f"{api_server.rstrip('/')}/openapi.json")

    def check(case, resp) -> None:
        assert resp.status_code < 500, (case.method, case.formatted_path, case.query,
                                        resp.status_code, resp.text[:300])
        if resp.status_code == 422:
            detail = resp.json()["detail"]
            assert detail and all(d.get("loc") for d in detail), detail

    assert fuzz(schema, 200, check) > 1000
