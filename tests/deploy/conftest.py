"""Offline deployment tests: the chart rendered by Helm's own engine (helm-python-sdk, Helm 4
in a wheel, no binary and no cluster), with several value sets."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "helios"
RELEASE, NAMESPACE = "helios", "helios"

# What an operator runs in production: external Kafka/Redis with credentials by reference,
# more replicas and partitions, an Ingress with TLS, restricted NetworkPolicy peers.
PRODUCTION = {
    "image": {"repository": "registry.example.com/helios", "tag": "0.1.0",
              "pullPolicy": "IfNotPresent"},
    "imagePullSecrets": [{"name": "registry"}],
    "kafka": {"bootstrap": "helios-kafka-bootstrap.kafka:9092", "port": 9092},
    "redis": {"url": "redis://redis-master.redis:6379/0", "existingSecret": "helios-redis",
              "existingSecretKey": "redis-url", "port": 6379},
    "topics": {"partitions": 24, "replicationFactor": 3},
    "config": {"HELIOS_LOG_LEVEL": "WARNING", "HELIOS_COMPRESSION": "zstd"},
    "gateway": {"replicas": 4, "autoscaling": {"enabled": True, "minReplicas": 4,
                                               "maxReplicas": 20,
                                               "targetCPUUtilizationPercentage": 60}},
    "bidder": {"replicas": 6, "nodeSelector": {"pool": "streaming"}},
    "auctioneer": {"replicas": 6},
    "profiles": {"replicas": 3},
    "api": {"serving": {"existingClaim": "helios-data", "mountPath": "/data",
                        "path": "serving/serving.duckdb"}},
    "ingress": {"enabled": True, "className": "nginx", "host": "rtb.example.com",
                "tlsSecretName": "rtb-example-com-tls"},
    "networkPolicy": {"ingressFrom": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "ingress-nginx"}}}],
                      "monitoringFrom": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "monitoring"}}}],
                      "kafkaTo": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "kafka"}}}],
                      "redisTo": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "redis"}}}]},
    "dagster": {"warehouseBackend": "postgres"},
}

# Secured Kafka as Strimzi hands it out (docs/deploy.md "Secured Kafka"): SCRAM-SHA-512
# over TLS, the KafkaUser's password and the cluster CA from their Secrets.
SECURED = {
    **PRODUCTION,
    "kafka": {**PRODUCTION["kafka"], "port": 9093, "security": {
        "protocol": "SASL_SSL",
        "sasl": {"mechanism": "SCRAM-SHA-512", "username": "helios",
                 "existingSecret": "helios", "passwordKey": "password"},
        "tls": {"caSecret": "helios-kafka-cluster-ca-cert", "caKey": "ca.crt"}}},
}

# Every optional object switched on (Prometheus Operator CRDs, Grafana dashboard, Ingress),
# and Kafka over mutual TLS (a Strimzi KafkaUser with `authentication: tls`).
EVERYTHING = {
    **PRODUCTION,
    "kafka": {**PRODUCTION["kafka"], "port": 9093, "security": {
        "protocol": "SSL",
        "tls": {"caSecret": "helios-kafka-cluster-ca-cert", "clientSecret": "helios",
                "keyPasswordKey": "user.password"}}},
    "metrics": {"podAnnotations": True,
                "serviceMonitor": {"enabled": True, "interval": "30s",
                                   "labels": {"release": "kube-prometheus-stack"}},
                "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
                "grafanaDashboard": {"enabled": True, "labels": {"grafana_dashboard": "1"},
                                     "annotations": {}}},
}

VALUE_SETS = {"defaults": {}, "production": PRODUCTION, "everything": EVERYTHING,
              "secured": SECURED}


def render(values: dict, chart: Path = CHART) -> dict[str, str]:
    """Template path -> rendered text, as `helm template` would (schema enforced)."""
    import helm_python as helm

    with helm.Chart.load(str(chart)) as c:
        return c.render(copy.deepcopy(values), name=RELEASE, namespace=NAMESPACE,
                        is_install=True)


def documents(rendered: dict[str, str]) -> list[dict]:
    """Every Kubernetes object in the rendered templates (NOTES.txt excluded)."""
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """Objects of each value set, rendered once per session."""
    return {name: documents(render(values)) for name, values in VALUE_SETS.items()}


@pytest.fixture(scope="session", params=sorted(VALUE_SETS))
def objects(request, rendered) -> Iterator[list[dict]]:
    yield rendered[request.param]


def of_kind(objs: list[dict], kind: str) -> list[dict]:
    return [o for o in objs if o["kind"] == kind]


def pod_specs(objs: list[dict]) -> list[tuple[str, dict]]:
    """(name, pod spec) of every workload: Deployments, Jobs and bare Pods (helm test)."""
    out = []
    for o in objs:
        if o["kind"] in ("Deployment", "Job"):
            out.append((o["metadata"]["name"], o["spec"]["template"]["spec"]))
        elif o["kind"] == "Pod":
            out.append((o["metadata"]["name"], o["spec"]))
    return out


def values_yaml() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())
