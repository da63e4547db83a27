"""API keys, limits and log hygiene on the real gateway (real Tansu) and the real analytics
API (the pipeline's serving snapshot), then on a live `helios up` whose log files are
scanned for keys, raw user ids and payloads after real traffic."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from helios_pipeline.api.app import create_app as create_api
from ingest_services.common.auth import HEADER
from ingest_services.gateway.app import FastPath
from ingest_services.gateway.app import create_app as create_gateway
from ingest_services.settings import ApiSettings, Settings, load_settings
from tests.integration.conftest import read_all

pytestmark = pytest.mark.integration

KEYS = "gw-key-one-5f1c,gw-key-two-a93e"  # two keys: the old and the new one, mid-rotation
OPEN = ("/healthz", "/metrics", "/docs", "/openapi.json")


def keyed(s: Settings, **extra: object) -> Settings:
    return s.model_copy(update={"gateway_api_keys": SecretStr(KEYS), **extra})


def test_gateway_without_keys_is_the_bare_fast_path(settings):
    """Auth off costs nothing: no middleware in front of the hot path at all."""
    assert type(create_gateway(settings)) is FastPath
    assert type(create_gateway(keyed(settings))) is not FastPath


def test_gateway_needs_one_of_the_keys_and_publishes_nothing_without(settings, examples):
    body = examples[0].read_bytes()
    with TestClient(create_gateway(keyed(settings))) as c:
        for headers, why in (({}, "missing API key"), ({HEADER: "nope"}, "invalid API key"),
                             ({"Authorization": "Bearer nope"}, "invalid API key"),
                             ({"Authorization": "Basic gw-key-one-5f1c"}, "missing API key")):
            for path in ("/bid", "/bids"):
                resp = c.post(path, content=body, headers=headers)
                assert resp.status_code == 401, (path, headers, resp.text)
                err = resp.json()
                assert err["error"] == why and HEADER in err["reason"], err
                assert "gw-key" not in resp.text  # never echo a key
        one = c.post("/bid", content=body, headers={HEADER: "gw-key-one-5f1c"})
        two = c.post("/bid", content=body, headers={"Authorization": "Bearer gw-key-two-a93e"})
        assert one.status_code == two.status_code == 202, (one.text, two.text)
        for path in OPEN:
            assert c.get(path).status_code == 200, path
        spec = c.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["ApiKey"]["name"] == HEADER
        assert "401" in spec["paths"]["/bid"]["post"]["responses"]
        assert "security" not in spec["paths"]["/healthz"]["get"]
    msgs = read_all(settings, settings.topic_requests, expect=2)
    assert sorted(m.key().decode() for m in msgs) == sorted([one.json()["rid"],
                                                              two.json()["rid"]])


def test_gateway_rate_limit_per_key_is_429_with_retry_after(settings, examples):
    body = examples[0].read_bytes()
    # 0.5/s: a bucket of one request, refilled in 2 s (slow enough for a slow machine)
    with TestClient(create_gateway(keyed(settings, gateway_rate_per_key=0.5))) as c:
        codes = [c.post("/bid", content=body, headers={HEADER: "gw-key-one-5f1c"})
                 for _ in range(2)]
        assert [r.status_code for r in codes] == [202, 429]
        assert 1 <= int(codes[1].headers["retry-after"]) <= 2
        assert "per API key" in codes[1].json()["reason"]
        # the other key has its own bucket
        assert c.post("/bid", content=body,
                      headers={HEADER: "gw-key-two-a93e"}).status_code == 202


def test_ndjson_lines_per_body_are_limited(settings, examples):
    line = examples[0].read_bytes().replace(b"\n", b"")
    with TestClient(create_gateway(settings.model_copy(
            update={"gateway_max_batch_lines": 3}))) as c:
        ok = c.post("/bids", content=b"\n".join([line] * 3) + b"\n\n")
        assert ok.status_code == 200 and ok.json()["accepted"] == 3
        over = c.post("/bids", content=b"\n".join([line] * 4))
        assert over.status_code == 413
        assert "HELIOS_GATEWAY_MAX_BATCH_LINES" in over.json()["reason"]
    assert len(read_all(settings, settings.topic_requests, expect=3)) == 3


@pytest.fixture(scope="module")
def api(pipeline):
    s = load_settings(ApiSettings, serving_path=pipeline["serving"],
                      api_keys="api-key-old-77d0, api-key-new-0b1e", api_rate_per_key=0,
                      api_max_days=31)
    with TestClient(create_api(s)) as c:
        yield c


def test_api_needs_a_key_for_data_but_not_for_probes_page_and_docs(api):
    resp = api.get("/api/outcomes/stats/")
    assert resp.status_code == 401 and HEADER in resp.json()["detail"]
    assert api.get("/api/outcomes/", headers={HEADER: "api-key-oldX"}).status_code == 401
    assert api.get("/api/outcomes/stats/", headers={HEADER: "api-key-old-77d0"}
                   ).status_code == 200
    assert api.get("/api/outcomes/stats/", headers={"Authorization": "Bearer api-key-new-0b1e"}
                   ).status_code == 200
    for path in (*OPEN, "/"):
        assert api.get(path).status_code == 200, path
    assert api.get("/static/app.js").status_code == 200


def test_api_limits_page_size_and_date_range(api):
    h = {HEADER: "api-key-new-0b1e"}
    big = api.get("/api/outcomes/?page_size=1001", headers=h)
    assert big.status_code == 422 and "page_size" in big.text
    wide = api.get("/api/outcomes/?date_from=2026-01-01&date_to=2026-03-01", headers=h)
    assert wide.status_code == 422 and "HELIOS_API_MAX_DAYS" in wide.text
    assert api.get("/api/outcomes/?date_from=2026-01-01&date_to=2026-01-31",
                   headers=h).status_code == 200


def test_api_rate_limit(pipeline):
    s = load_settings(ApiSettings, serving_path=pipeline["serving"], api_keys="k-rl-1",
                      api_rate_per_key=0.5)
    with TestClient(create_api(s)) as c:
        codes = [c.get("/api/outcomes/stats/", headers={HEADER: "k-rl-1"}) for _ in range(2)]
        assert [r.status_code for r in codes] == [200, 429]
        assert int(codes[1].headers["retry-after"]) >= 1


# ------------------------------------------------------------------ a live run's logs
def test_live_logs_hold_no_keys_user_ids_or_payloads(tmp_path):
    """`helios up` with keys on, real traffic through the gateway and the API (good and bad
    keys, invalid bodies, user-id filters), then every log file is scanned."""
    from tests.integration.test_stack_e2e import Stack, helios

    tag = uuid.uuid4().hex[:8]
    gw_keys, api_keys = [f"gwk-{tag}-a", f"gwk-{tag}-b"], [f"apik-{tag}-a"]
    wrong = f"wrong-key-{tag}"
    users = [f"user-{tag}-{i}" for i in range(20)]
    marker = f"payload-marker-{tag}.example"
    stack = Stack(tmp_path, HELIOS_GATEWAY_API_KEYS=",".join(gw_keys),
                  HELIOS_API_KEYS=",".join(api_keys), HELIOS_POSTGRES="false",
                  HELIOS_LOG_LEVEL="DEBUG")
    try:
        eps = stack.wait_ready()["endpoints"]
        gw = eps["gateway_url"].rstrip("/")
        api_url = eps["api_url"].rstrip("/").removesuffix("/api")

        def bid(i: int, user: str) -> bytes:
            return orjson.dumps({"id": f"r{i}", "at": 1,
                                 "imp": [{"id": "1", "banner": {"w": 300, "h": 250},
                                          "bidfloor": 0.01}],
                                 "site": {"domain": marker, "page": f"https://{marker}/a"},
                                 "user": {"id": user, "buyeruid": user},
                                 "device": {"ifa": user, "ip": "203.0.113.7"}})

        with httpx.Client(timeout=10) as c:
            accepted = 0
            for i, user in enumerate(users):
                key = gw_keys[i % 2]
                headers = {HEADER: key} if i % 3 else {"Authorization": f"Bearer {key}"}
                r = c.post(f"{gw}/bid", content=bid(i, user), headers=headers)
                assert r.status_code == 202, r.text
                accepted += 1
                assert c.post(f"{gw}/bid", content=bid(i, user),
                              headers={HEADER: wrong}).status_code == 401
            batch = b"\n".join(bid(100 + i, u) for i, u in enumerate(users[:5]))
            r = c.post(f"{gw}/bids", content=batch, headers={HEADER: gw_keys[0]})
            assert r.status_code == 200 and r.json()["accepted"] == 5, r.text
            accepted += 5
            bad = orjson.dumps({"id": "bad", "imp": [], "user": {"id": users[0]},
                                "site": {"domain": marker}})
            assert c.post(f"{gw}/bid", content=bad,
                          headers={HEADER: gw_keys[0]}).status_code == 400
            assert c.post(f"{gw}/bid", content=b"{not json " + marker.encode(),
                          headers={HEADER: gw_keys[0]}).status_code == 400
            for user in users[:3]:
                assert c.get(f"{api_url}/api/outcomes/", params={"user_id": user},
                             headers={HEADER: api_keys[0]}).status_code in (200, 503)
                assert c.get(f"{api_url}/api/outcomes/", params={"user_id": user},
                             headers={HEADER: wrong}).status_code == 401
        audit = helios(stack.env, "audit", "--json", "--wait", "60")
        rep = json.loads(audit.stdout)
        assert audit.returncode == 0 and rep["accepted"] == accepted, audit.stdout
    finally:
        assert stack.stop() == 0
    time.sleep(0.2)
    logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log")}
    logs["up.out"] = stack.output()
    assert {"gateway.log", "bidder.log", "auctioneer.log", "api.log"} <= set(logs), logs.keys()
    assert all(logs[n].strip() for n in ("gateway.log", "bidder.log", "api.log"))
    secrets = [*gw_keys, *api_keys, wrong, *users, marker]
    for name, text in logs.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} is in {name}"
        assert '"imp"' not in text and "bidfloor" not in text, name
