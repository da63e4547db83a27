"""The gateway against a real Tansu broker: what is accepted is on the topic, what is
rejected is not, and 202 is only ever answered once the broker has the message."""

from __future__ import annotations

import orjson
import pytest
from fastapi.testclient import TestClient

from helios_pipeline.stack import probes
from ingest_services.gateway.app import create_app
from ingest_services.settings import Settings
from tests.integration.conftest import read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def client(settings: Settings):
    with TestClient(create_app(settings)) as c:
        yield c


def test_every_shared_example_is_accepted_and_published_untouched(client, settings, examples):
    rids = {}
    for f in examples:
        raw = f.read_bytes()
        resp = client.post("/bid", content=raw, headers={"content-type": "application/json"})
        assert resp.status_code == 202, (f.name, resp.text)
        body = resp.json()
        assert body["status"] == "accepted"
        assert body["id"] == orjson.loads(raw)["id"]
        rids[body["rid"]] = raw
    assert len(rids) == len(examples)  # unique rid per accepted request, even for reused ids
    msgs = read_all(settings, settings.topic_requests, expect=len(examples))
    assert len(msgs) == len(examples)
    for msg in msgs:
        env = orjson.loads(msg.value())
        assert msg.key().decode() == env["rid"]
        raw = rids[env["rid"]]
        assert raw in msg.value()  # the sender's bytes verbatim: unknown fields and ext kept
        assert env["imp_ids"] == [i["id"] for i in orjson.loads(raw)["imp"]]


def test_202_means_the_message_is_already_on_the_broker(client, settings, examples):
    resp = client.post("/bid", content=examples[0].read_bytes())
    assert resp.status_code == 202
    # no flush, no wait: a reader sees it at once because 202 waited for the ack
    msgs = read_all(settings, settings.topic_requests, expect=1, timeout=5)
    assert [m.key().decode() for m in msgs] == [resp.json()["rid"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"imp":[{"id":"1","banner":{}}]}', "id"),
        (b'{"id":"r","imp":[]}', "imp"),
        (b'{"id":"r","imp":[{"id":"1","video":{"mimes":[]}}]}', "imp[0].video.mimes"),
        (b'{"id":"r","imp":[{"id":"1","banner":{}}],"site":{},"app":{}}', "app"),
        (b'{"id":"r","imp":[{"id":"1","banner":{}}],"regs":{"gdpr":2}}', "regs.gdpr"),
        (b'{"id":"r","imp":[{"id":"1","banner":{},"bidfloor":-1}]}', "imp[0].bidfloor"),
        (b"[1,2]", ""),
        (b"not json", ""),
    ],
)
def test_invalid_requests_get_400_naming_the_field_and_publish_nothing(
    client, settings, body, field
):
    resp = client.post("/bid", content=body)
    assert resp.status_code == 400
    err = resp.json()
    assert err["field"] == field
    assert err["reason"]
    assert read_all(settings, settings.topic_requests, idle_s=1.0) == []


def test_oversized_body_is_413_and_publishes_nothing(settings, examples):
    small = settings.model_copy(update={"gateway_max_body_bytes": 1024})
    with TestClient(create_app(small)) as c:
        big = examples[0].read_bytes()[:-1] + b',"pad":"' + b"x" * 2000 + b'"}'
        resp = c.post("/bid", content=big)
        assert resp.status_code == 413
        assert "1024" in resp.json()["reason"]
    assert read_all(settings, settings.topic_requests, idle_s=1.0) == []


def test_broker_unreachable_is_503_with_retry_after(examples):
    from ingest_services.settings import load_settings

    dead = load_settings(kafka_bootstrap=f"127.0.0.1:{probes.free_port()}",
                         gateway_ack_timeout_s=1.0)
    with TestClient(create_app(dead)) as c:
        resp = c.post("/bid", content=examples[0].read_bytes())
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "1"
        assert c.get("/readyz").status_code == 503
        assert c.get("/healthz").status_code == 200


def test_ndjson_batch_accepts_valid_lines_and_reports_invalid_ones(client, settings, examples):
    good = [f.read_bytes().replace(b"\n", b"") for f in examples[:3]]
    lines = [good[0], b'{"id":"x","imp":[]}', good[1], b"{oops", good[2], b""]
    resp = client.post("/bids", content=b"\n".join(lines),
                       headers={"content-type": "application/x-ndjson"})
    assert resp.status_code == 200
    body = resp.json()
    assert body["accepted"] == 3
    assert [(r["line"], r["field"]) for r in body["rejected"]] == [(2, "imp"), (4, "")]
    assert body["failed"] == []
    msgs = read_all(settings, settings.topic_requests, expect=3)
    assert len(msgs) == 3


def test_probes_metrics_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    client.post("/bid", content=b'{"id":"r","imp":[]}')
    metrics = client.get("/metrics").text
    assert 'bid_requests_total{status="rejected"}' in metrics
    spec = client.get("/openapi.json").json()
    bid = spec["paths"]["/bid"]["post"]
    schema = bid["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["required"]) == {"id", "imp"}
    assert {"202", "400", "413", "503"} <= set(bid["responses"])
    assert "application/x-ndjson" in spec["paths"]["/bids"]["post"]["requestBody"]["content"]


def test_openapi_request_schema_is_the_validating_contract(client):
    """The docs cannot disagree with the behaviour: the /bid schema is generated from the
    struct the gateway decodes with, including the rule on ``at`` the old model lacked."""
    from ingest_services.contracts import openrtb

    spec = client.get("/openapi.json").json()
    schema = spec["paths"]["/bid"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    ours = openrtb.json_schema()
    assert set(schema["properties"]) == set(ours["properties"])
    assert schema["description"] == ours["description"]
    assert set(schema["required"]) == set(ours["required"]) == {"id", "imp"}
    at = schema["properties"]["at"]
    assert {"enum": [1, 2]} in at["anyOf"][0]["anyOf"] and {"minimum": 500} in at["anyOf"][0][
        "anyOf"]
    assert client.post("/bid", content=b'{"id":"r","imp":[{"id":"1","banner":{}}],"at":3}'
                       ).json()["field"] == "at"
    imp = schema["properties"]["imp"]
    assert imp["minItems"] == 1
    assert schema["properties"]["tmax"]["anyOf"][0]["minimum"] == 0


def series(metrics: str, name: str) -> float:
    """One sample's value in a /metrics page (0 when the series does not exist yet)."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_out_of_range_optional_field_is_dropped_counted_and_warned(client, settings, examples):
    lat = 'bid_request_fields_dropped_total{field="device.geo.lat"}'
    before = series(client.get("/metrics").text, lat)  # counters are per process
    doc = orjson.loads(examples[0].read_bytes())
    doc.setdefault("device", {})["geo"] = {"lat": 135.0, "lon": 10.5, "country": "DEU"}
    resp = client.post("/bid", content=orjson.dumps(doc))
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["warnings"] == [
        {"field": "device.geo.lat", "reason": "must be a number between -90 and 90"}]
    [msg] = read_all(settings, settings.topic_requests, expect=1)
    published = orjson.loads(msg.value())["request"]
    assert "lat" not in published["device"]["geo"]  # dropped before publishing
    assert published["device"]["geo"] == {"lon": 10.5, "country": "DEU"}  # the rest kept
    assert published["imp"] == doc["imp"]
    assert series(client.get("/metrics").text, lat) == before + 1
    # a clean request has no warnings key at all
    clean = client.post("/bid", content=examples[0].read_bytes()).json()
    assert "warnings" not in clean
    # NDJSON: the line number comes with the warning
    resp = client.post("/bids", content=orjson.dumps(doc) + b"\n" + examples[0].read_bytes()
                       .replace(b"\n", b""))
    assert resp.json()["warnings"] == [{"line": 1, "field": "device.geo.lat",
                                        "reason": "must be a number between -90 and 90"}]


def test_docs_page_uses_packaged_swagger_assets(client):
    page = client.get("/docs").text
    assert "cdn" not in page.lower()
    for asset, size in (("/docs-assets/swagger-ui-bundle.js", 1_000_000),
                        ("/docs-assets/swagger-ui.css", 100_000)):
        assert asset in page
        got = client.get(asset)
        assert got.status_code == 200 and len(got.content) > size, asset
