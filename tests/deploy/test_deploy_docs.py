"""docs/deploy.md stays true: its example values install, every alert is explained, and
the limit of the offline tests (the Dagster chart's remote schema) is said."""

from __future__ import annotations

import re

import yaml

from tests.deploy.conftest import CHART, REPO, documents, of_kind, render

DOC = (REPO / "docs" / "deploy.md").read_text()


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC, re.S)


def test_example_values_render_with_the_schema():
    [block] = [b for b in yaml_blocks() if b.startswith("# my-values.yaml")]
    values = yaml.safe_load(block)
    objs = documents(render(values))  # raises on any key or type the schema refuses
    assert of_kind(objs, "Ingress") and of_kind(objs, "ServiceMonitor")


def test_secured_kafka_examples_render_and_reach_the_services():
    """Each `# helios-values:` block of docs/deploy.md (Strimzi, Bitnami) installs with the
    schema, and its password is only ever a reference to the Secret it names."""
    blocks = [b for b in yaml_blocks() if b.startswith("# helios-values:")]
    assert len(blocks) >= 3
    for block in blocks:
        sec = yaml.safe_load(block)["kafka"]["security"]
        objs = documents(render(yaml.safe_load(block)))
        [cfg] = [o["data"] for o in of_kind(objs, "ConfigMap")
                 if o["metadata"]["name"] == "helios-config"]
        assert cfg["HELIOS_KAFKA_SECURITY_PROTOCOL"] == sec["protocol"]
        [bidder] = [o for o in of_kind(objs, "Deployment")
                    if o["metadata"]["name"] == "helios-bidder"]
        env = bidder["spec"]["template"]["spec"]["containers"][0]["env"]
        [pw] = [e for e in env if e["name"] == "HELIOS_KAFKA_SASL_PASSWORD"]
        if "sasl" in sec:
            assert pw["valueFrom"]["secretKeyRef"] == {
                "name": sec["sasl"]["existingSecret"], "key": sec["sasl"]["passwordKey"],
                "optional": False}


def test_every_alert_is_explained():
    rules = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    alerts = [r["alert"] for g in rules["groups"] for r in g["rules"]]
    documented = re.findall(r"^\| `(Helios\w+)`", DOC, re.M)
    assert sorted(documented) == sorted(alerts)


def test_limits_and_links_are_stated():
    assert "remote" in DOC and "values.schema.json" in DOC
    assert "HELIOS_WAREHOUSE_BACKEND" in DOC and "HELIOS_WAREHOUSE_DSN" in DOC
    assert "docs/deploy.md" in (REPO / "README.md").read_text()
    for path in re.findall(r"`((?:helm|tests|files)/[\w./-]+)`", DOC):
        where = CHART / path if path.startswith("files/") else REPO / path
        assert where.exists(), path
