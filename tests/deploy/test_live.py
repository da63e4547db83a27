"""What the chart ships, run against a live `helios up` (real broker, Redis and services):

* every metric name used by the Grafana dashboard and the alert rules is one the services
  really export (scraped from each service's /metrics);
* the `helm test` script passes against the real gateway and API, and fails when the
  gateway is gone;
* the topics hook creates the topics with the partitions it is given, is idempotent, and
  names a topic that has fewer partitions than asked (Tansu cannot add partitions, and
  Kafka's tools do that: docs/deploy.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from helios_pipeline.stack import probes
from tests.deploy.conftest import CHART
from tests.integration.test_stack_e2e import Stack

pytestmark = pytest.mark.integration

FILES = CHART / "files"
SERVICES = ("gateway", "bidder", "auctioneer", "profile", "api")
# Series names each metric type puts on the wire (prometheus_client, text format)
SUFFIXES = {"counter": ("_total", "_created"), "gauge": ("",),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "summary": ("", "_sum", "_count", "_created"), "info": ("_info",),
            "untyped": ("",)}
PROMQL_WORDS = {"sum", "by", "without", "rate", "irate", "increase", "deriv", "delta", "max",
                "min", "avg", "count", "and", "or", "unless", "on", "ignoring", "group_left",
                "group_right", "bool", "offset", "histogram_quantile", "clamp_min", "clamp_max",
                "absent", "topk", "bottomk", "le", "e"}
PROMETHEUS_OWN = {"up"}  # written by Prometheus for every target, not by a service


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("helios-up"), HELIOS_POSTGRES="false")
    try:
        state = s.wait_ready()
        yield s, state["endpoints"]
    finally:
        s.stop()


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (labels, functions, keywords and numbers left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)          # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)                   # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)                  # ranges
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        word = m.group(0)
        if word in PROMQL_WORDS or expr[m.end():].lstrip().startswith("("):
            continue
        if re.fullmatch(r"\d", expr[m.start() - 1:m.start()] or "x"):  # 1e-9
            continue
        names.add(word)
    return names


def shipped_expressions() -> dict[str, str]:
    dash = json.loads((FILES / "grafana-dashboard.json").read_text())
    exprs = {f"dashboard: {p['title']} ({t['refId']})": t["expr"] for p in dash["panels"]
             for t in p["targets"]}
    rules = yaml.safe_load((FILES / "alerts.yaml").read_text())
    exprs |= {f"alert {r['alert']}": r["expr"] for g in rules["groups"] for r in g["rules"]}
    total = (sum(len(p["targets"]) for p in dash["panels"])
             + sum(len(g["rules"]) for g in rules["groups"]))
    assert len(exprs) == total, "two expressions under one name: one would go unchecked"
    return exprs


def test_metric_name_extraction():
    assert metric_names('sum by (job) (rate(helios_dead_letters_total{job=~"a|b"}[5m]))'
                        ' / clamp_min(sum(rate(x_total[5m])), 1e-9) > 0.001') == {
        "helios_dead_letters_total", "x_total"}
    assert metric_names('histogram_quantile(0.95, sum by (le) (rate(a_bucket[5m])))') == {
        "a_bucket"}
    assert metric_names('up{job=~"helios-.*"} == 0') == {"up"}


def scrape(url: str) -> set[str]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + s for s in SUFFIXES[family.type]}
        names |= {s.name for s in family.samples}
    return names


def test_dashboard_and_alerts_use_only_exported_metrics(stack, examples):
    _s, eps = stack
    # some traffic first, so every service has served and counted something
    for path in examples[:3]:
        req = urllib.request.Request(f"{eps['gateway_url']}/bid", data=path.read_bytes(),
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 202
    urls = {"gateway": eps["gateway_metrics"], "bidder": eps["bidder_metrics"],
            "auctioneer": eps["auctioneer_metrics"], "profile": eps["profile_metrics"],
            "api": eps["api_url"].removesuffix("api/") + "metrics"}
    exported: dict[str, set[str]] = {name: scrape(url) for name, url in urls.items()}
    everything = set().union(*exported.values())
    exprs = shipped_expressions()
    used = set().union(*(metric_names(e) for e in exprs.values()))
    assert len(used) >= 15
    unknown = {(where, n) for where, e in exprs.items() for n in metric_names(e)
               if n not in everything | PROMETHEUS_OWN}
    assert unknown == set(), f"not exported by any Helios service: {sorted(unknown)}"
    # the names the issue asks the dashboard for come from the service that owns them
    assert "helios_consumer_lag" in exported["bidder"] & exported["auctioneer"]
    assert "circuit_breaker_state" in exported["bidder"]
    assert "bid_requests_total" in exported["gateway"]
    assert "api_requests_total" in exported["api"]
    assert "clearing_price_usd_sum" in exported["auctioneer"]


def run_file(name: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A chart file, as its pod runs it (`python FILE`), with only the env the pod gets."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HELIOS_")}
    return subprocess.run([sys.executable, str(FILES / name)], env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_helm_test_script_passes_against_the_live_services(stack, tmp_path):
    _s, eps = stack
    env = {"HELIOS_TEST_GATEWAY": eps["gateway_url"],
           "HELIOS_TEST_API": eps["api_url"].removesuffix("/api/"),
           "HELIOS_TEST_REQUEST": str(FILES / "bid-request.json")}
    ok = run_file("helm-test.py", env)
    assert ok.returncode == 0, ok.stderr
    assert "accepted as rid" in ok.stdout and "helm test passed" in ok.stdout
    # a gateway that is not there fails the test, naming what failed
    gone = run_file("helm-test.py", {**env, "HELIOS_TEST_GATEWAY":
                                     f"http://127.0.0.1:{probes.free_port()}"})
    assert gone.returncode != 0
    # an invalid request is not "passed" either
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"id": "x", "imp": []}))
    rejected = run_file("helm-test.py", {**env, "HELIOS_TEST_REQUEST": str(bad)})
    assert rejected.returncode == 1 and "FAIL POST" in rejected.stderr


def partitions(bootstrap: str, topics: list[str]) -> dict[str, int]:
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {t: len(md.topics[t].partitions) for t in topics if t in md.topics}


def test_topics_hook_creates_topics(stack):
    _s, eps = stack
    tag = uuid.uuid4().hex[:8]
    env = {"HELIOS_KAFKA_BOOTSTRAP": eps["kafka_bootstrap"],
           "HELIOS_TOPIC_REQUESTS": f"req-{tag}", "HELIOS_TOPIC_RESPONSES": f"resp-{tag}",
           "HELIOS_TOPIC_OUTCOMES": f"out-{tag}", "HELIOS_PARTITIONS": "2",
           "HELIOS_REPLICATION_FACTOR": "1"}
    topics = [f"{t}-{tag}" for t in ("req", "resp", "out")]
    topics += [f"{t}.dlq" for t in topics]
    first = run_file("create-topics.py", env)
    assert first.returncode == 0, first.stderr
    assert partitions(eps["kafka_bootstrap"], topics) == dict.fromkeys(topics, 2)
    again = run_file("create-topics.py", env)  # every upgrade runs it: idempotent
    assert again.returncode == 0, again.stderr
    assert "warning" not in again.stdout
    more = run_file("create-topics.py", {**env, "HELIOS_PARTITIONS": "4"})
    assert more.returncode == 0, more.stderr
    assert partitions(eps["kafka_bootstrap"], topics) == dict.fromkeys(topics, 2)
    for topic in topics:
        assert f"warning: topic {topic} has 2 partitions, topics.partitions asks 4" in more.stdout
    bad = run_file("create-topics.py", {**env, "HELIOS_PARTITIONS": "0"})
    assert bad.returncode == 2 and "HELIOS_PARTITIONS" in bad.stderr


def test_hook_file_is_what_the_job_runs():
    from tests.deploy.conftest import documents, of_kind, render

    [job] = of_kind(documents(render({})), "Job")
    [c] = job["spec"]["template"]["spec"]["containers"]
    assert c["command"][2].strip() == (FILES / "create-topics.py").read_text().strip()
    assert Path(FILES / "helm-test.py").is_file()
