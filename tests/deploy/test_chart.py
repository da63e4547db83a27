"""The Helios chart, rendered offline by Helm's own engine (helm-python-sdk) with several
value sets: lint, values.schema.json enforcement, Kubernetes 1.30+ schemas
(kubernetes-validate) and the policies every object must keep (docs/deploy.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from ingest_services.settings import SERVICE_SETTINGS, ApiSettings, Settings
from tests.deploy.conftest import (
    CHART,
    EVERYTHING,
    PRODUCTION,
    SECURED,
    VALUE_SETS,
    documents,
    of_kind,
    pod_specs,
    render,
    values_yaml,
)

COMPONENTS = ("gateway", "bidder", "auctioneer", "profiles", "api")
GROUPS = {**SERVICE_SETTINGS, "api": ApiSettings}  # what each `helios serve X` reads
# Variables the chart sets from its structure (addresses, ports, topics), not from `config`
STRUCTURAL = {"home", "bind_host", "kafka_bootstrap", "redis_url", "profile_addr",
              "topic_requests", "topic_responses", "topic_outcomes", "partitions",
              "replication_factor", "create_topics", "gateway_port", "bidder_metrics_port",
              "auctioneer_metrics_port", "profile_port", "profile_metrics_port", "api_port",
              "serving_path", "kafka_transactions",
              # kafka.security: protocol, SASL, TLS; the passwords only from Secrets
              "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username",
              "kafka_sasl_password", "kafka_ssl_ca_location", "kafka_ssl_certificate_location",
              "kafka_ssl_key_location", "kafka_ssl_key_password", "kafka_ssl_check_hostname",
              "gateway_api_keys", "api_keys"}  # credentials: from the `auth` Secret
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}  # Prometheus Operator: not in k8s schemas


def env_var(field: str) -> str:
    return f"HELIOS_{field.upper()}"


def configmaps(objs: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o.get("data") or {} for o in of_kind(objs, "ConfigMap")}


def deployment(objs: list[dict], component: str) -> dict:
    [d] = [o for o in of_kind(objs, "Deployment")
           if o["metadata"]["labels"]["app.kubernetes.io/component"] == component]
    return d


def containers(objs: list[dict]) -> list[tuple[str, dict, dict]]:
    return [(name, spec, c) for name, spec in pod_specs(objs)
            for c in spec.get("initContainers", []) + spec["containers"]]


# ------------------------------------------------------------------ render, lint, schema
def test_every_value_set_renders_every_object(rendered):
    for name, objs in rendered.items():
        kinds = [o["kind"] for o in objs]
        assert kinds.count("Deployment") == 5, name
        assert kinds.count("Service") == 5, name
        assert kinds.count("PodDisruptionBudget") == 5, name
        assert kinds.count("HorizontalPodAutoscaler") == 2, name
        assert kinds.count("Job") == 1 and kinds.count("Pod") == 1, name
        assert kinds.count("NetworkPolicy") == 9, name  # deny, dns, 5 services, job, test
        assert "Secret" not in kinds, name
    assert {o["kind"] for o in rendered["everything"]} >= CRD_KINDS | {"Ingress"}
    assert not CRD_KINDS & {o["kind"] for o in rendered["defaults"]}


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_is_clean(name):
    import helm_python as helm

    report = helm.lint(str(CHART), VALUE_SETS[name], strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


BAD_VALUES = {
    "wrong type": ({"gateway": {"replicas": "two"}}, "/gateway/replicas"),
    "unknown top-level key": ({"replicaCount": 3}, "replicaCount"),
    "unknown nested key": ({"bidder": {"metricPort": 9101}}, "metricPort"),
    "unknown setting": ({"config": {"HELIOS_GATEWAY_PROT": 8080}}, "HELIOS_GATEWAY_PROT"),
    "setting below its minimum": ({"config": {"HELIOS_BIDDER_BATCH_SIZE": 0}},
                                  "HELIOS_BIDDER_BATCH_SIZE"),
    "setting outside its enum": ({"config": {"HELIOS_COMPRESSION": "brotli"}},
                                 "HELIOS_COMPRESSION"),
    "port out of range": ({"profiles": {"port": 70000}}, "/profiles/port"),
    "credentials in the Redis URL": ({"redis": {"url": "redis://:hunter2@redis:6379/0"}},
                                     "/redis/url"),
    "resources without limits": ({"api": {"resources": {"limits": None}}},
                                 "limits"),
    "limit without memory": ({"bidder": {"resources": {"limits": {"memory": None}}}}, "memory"),
    "bad warehouse backend": ({"dagster": {"warehouseBackend": "sqlite"}},
                              "warehouseBackend"),
    "partitions start not a date": ({"dagster": {"partitionsStart": "yesterday"}},
                                    "partitionsStart"),
    "zero partitions": ({"topics": {"partitions": 0}}, "/topics/partitions"),
    "transactions not a boolean": ({"kafka": {"transactions": "yes"}}, "/kafka/transactions"),
    "SASL without its Secret": ({"kafka": {"security": {
        "protocol": "SASL_SSL", "sasl": {"mechanism": "PLAIN", "username": "u"}}}},
        "/kafka/security/sasl/existingSecret"),
    "SASL without a user": ({"kafka": {"security": {
        "protocol": "SASL_SSL", "sasl": {"mechanism": "PLAIN", "existingSecret": "s"}}}},
        "/kafka/security/sasl/username"),
    "SASL mechanism not offered": ({"kafka": {"security": {
        "protocol": "SASL_SSL", "sasl": {"mechanism": "GSSAPI", "username": "u",
                                         "existingSecret": "s"}}}},
        "/kafka/security/sasl/mechanism"),
    "a CA without TLS": ({"kafka": {"security": {"tls": {"caSecret": "ca"}}}},
                         "/kafka/security/tls/caSecret"),
    "a literal Kafka password": ({"kafka": {"security": {"sasl": {"password": "hunter2"}}}},
                                 "'password' not allowed"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_schema_rejects_bad_values(case):
    import helm_python as helm
    from helm_python.errors import HelmError

    values, where = BAD_VALUES[case]
    with pytest.raises(HelmError, match=re.escape(where)):
        render(values)
    report = helm.lint(str(CHART), values, strict=True)
    assert any(where in m["error"] for m in report["messages"] if m["severity"] == 3), report


def test_schema_lists_every_tuning_setting_with_its_rules():
    """`config` in values.schema.json is exactly the settings the chart does not set itself,
    each with settings.py's type, bounds and enum, and values.yaml's defaults are settings.py's:
    a new setting fails here until the chart carries it."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    fields: dict = {}
    for group in GROUPS.values():
        fields.update(group.model_fields)
    tuning = {env_var(f) for f in fields} - {env_var(f) for f in STRUCTURAL}
    assert set(config["properties"]) == tuning
    assert set(values_yaml()["config"]) == tuning
    pyd = Settings.model_json_schema()["properties"]
    for var, rule in config["properties"].items():
        field = var.removeprefix("HELIOS_").lower()
        for key in ("type", "enum", "minimum", "maximum", "exclusiveMinimum"):
            assert rule.get(key) == pyd[field].get(key), (var, key)
        assert values_yaml()["config"][var] == fields[field].default, var


def test_schema_is_closed_everywhere():
    """Every object in the schema that lists properties refuses unknown keys."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_ = []

    def walk(node: dict, path: str) -> None:
        if node.get("type") == "object" and "properties" in node:
            if node.get("additionalProperties") is not False:
                open_.append(path)
            for k, v in node["properties"].items():
                walk(v, f"{path}/{k}")

    walk(schema, "")
    assert open_ == []
    assert set(schema["required"]) == set(values_yaml())


# ------------------------------------------------------------------ Kubernetes schemas
@pytest.mark.parametrize("version", ["1.30.0", "latest"])
def test_manifests_valid_for_kubernetes(rendered, version):
    import kubernetes_validate

    version = kubernetes_validate.latest_version() if version == "latest" else version
    checked = 0
    for name, objs in rendered.items():
        for obj in objs:
            if obj["kind"] in CRD_KINDS:
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name}: {obj['kind']}/{obj['metadata']['name']} invalid for "
                            f"Kubernetes {version}: {exc.message} at {list(exc.path)}")
            checked += 1
    assert checked > 90


def test_crds_have_their_required_shape(rendered):
    """What kubernetes-validate cannot check (operator CRDs): the fields the operator needs."""
    objs = rendered["everything"]
    services = {s["metadata"]["name"]: s for s in of_kind(objs, "Service")}
    for sm in of_kind(objs, "ServiceMonitor"):
        assert sm["apiVersion"] == "monitoring.coreos.com/v1"
        sel = sm["spec"]["selector"]["matchLabels"].items()
        [svc] = [s for s in services.values() if s["metadata"]["labels"].items() >= sel]
        ports = {p["name"] for p in svc["spec"]["ports"]}
        for e in sm["spec"]["endpoints"]:
            assert e["port"] in ports and e["path"] == "/metrics"
        assert sm["spec"]["jobLabel"] in svc["metadata"]["labels"]
        assert svc["metadata"]["labels"][sm["spec"]["jobLabel"]].startswith("helios-")
    [rule] = of_kind(objs, "PrometheusRule")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    dash = configmaps(objs)["helios-dashboard"]
    assert json.loads(dash["helios.json"]) == json.loads(
        (CHART / "files" / "grafana-dashboard.json").read_text())


# ------------------------------------------------------------------ policies
def test_containers_non_root_read_only_no_capabilities(objects):
    for name, spec, c in containers(objects):
        pod = spec["securityContext"]
        sc = c["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, name
        assert sc["runAsNonRoot"] is True and sc.get("runAsUser", pod["runAsUser"]) != 0, name
        assert sc["readOnlyRootFilesystem"] is True, name
        assert sc["allowPrivilegeEscalation"] is False and sc.get("privileged") is not True
        assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
        seccomp = sc.get("seccompProfile") or pod.get("seccompProfile")
        assert seccomp == {"type": "RuntimeDefault"}, name
        # the read-only root needs a writable /tmp: HELIOS_HOME and scratch files live there
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        assert spec.get("automountServiceAccountToken") is False, name


def test_containers_have_resources_and_services_have_probes(objects):
    for name, _spec, c in containers(objects):
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c["resources"].get(kind, {})), (name, kind)
    for d in of_kind(objects, "Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            assert c.get("livenessProbe") and c.get("readinessProbe"), d["metadata"]["name"]


def _probe_port(probe: dict):
    for kind in ("httpGet", "tcpSocket", "grpc"):
        if kind in probe:
            return probe[kind]["port"]
    raise AssertionError(f"probe without a port: {probe}")


def test_every_probe_and_scrape_port_is_a_container_port(objects):
    for d in of_kind(objects, "Deployment"):
        tpl = d["spec"]["template"]
        for c in tpl["spec"]["containers"]:
            names = {p["name"] for p in c["ports"]}
            numbers = {p["containerPort"] for p in c["ports"]}
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                if kind in c:
                    port = _probe_port(c[kind])
                    assert port in (names if isinstance(port, str) else numbers), (
                        d["metadata"]["name"], kind, port)
            scrape = tpl["metadata"].get("annotations", {}).get("prometheus.io/port")
            if scrape is not None:
                assert int(scrape) in numbers, d["metadata"]["name"]


def test_probes_use_the_real_health_endpoints(rendered):
    """gateway and API: /healthz + /readyz (or the configured path); bidder and auctioneer:
    their status server; the profile service: the standard gRPC health check."""
    objs = rendered["defaults"]
    for comp in ("gateway", "bidder", "auctioneer"):
        [c] = deployment(objs, comp)["spec"]["template"]["spec"]["containers"]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    [api] = deployment(objs, "api")["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == values_yaml()["api"]["readinessPath"]
    [prof] = deployment(objs, "profiles")["spec"]["template"]["spec"]["containers"]
    assert prof["readinessProbe"]["grpc"]["port"] == values_yaml()["profiles"]["port"]
    assert prof["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    custom = documents(render({"api": {"readinessPath": "/readyz"}}))
    [api] = deployment(custom, "api")["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"


CREDENTIAL_URL = re.compile(r"://[^/@\s:]*:[^/@\s]+@")
CREDENTIAL_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|DSN|CREDENTIAL", re.I)


def test_no_literal_credentials(objects):
    """No Secret is rendered; nothing carries a URL with a password or a literal value for
    a credential-like variable (those come from a Secret by reference)."""
    assert not of_kind(objects, "Secret")
    for cm in of_kind(objects, "ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            assert not CREDENTIAL_URL.search(value), (cm["metadata"]["name"], key)
            assert not CREDENTIAL_NAME.search(key), (cm["metadata"]["name"], key)
    for name, _spec, c in containers(objects):
        for e in c.get("env", []):
            if "value" in e:
                assert not CREDENTIAL_URL.search(e["value"]), (name, e["name"])
                assert not CREDENTIAL_NAME.search(e["name"]), (name, e["name"])


def test_redis_url_from_a_secret_by_reference(rendered):
    objs = rendered["production"]
    assert "HELIOS_REDIS_URL" not in configmaps(objs)["helios-config"]
    [c] = deployment(objs, "profiles")["spec"]["template"]["spec"]["containers"]
    [ref] = [e["valueFrom"]["secretKeyRef"] for e in c["env"]
             if e["name"] == "HELIOS_REDIS_URL"]
    assert ref == {"name": PRODUCTION["redis"]["existingSecret"],
                   "key": PRODUCTION["redis"]["existingSecretKey"]}


def test_every_service_selects_pods_that_exist(objects):
    templates = [o["spec"]["template"]["metadata"]["labels"]
                 for o in of_kind(objects, "Deployment")]
    for svc in of_kind(objects, "Service"):
        sel = svc["spec"]["selector"]
        matching = [t for t in templates if t.items() >= sel.items()]
        assert len(matching) == 1, svc["metadata"]["name"]
        [d] = [d for d in of_kind(objects, "Deployment")
               if d["spec"]["template"]["metadata"]["labels"] == matching[0]]
        ports = {p["name"] for c in d["spec"]["template"]["spec"]["containers"]
                 for p in c["ports"]}
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= ports
    for kind in ("PodDisruptionBudget",):
        for o in of_kind(objects, kind):
            sel = o["spec"]["selector"]["matchLabels"]
            assert any(t.items() >= sel.items() for t in templates), o["metadata"]["name"]
    deployments = {d["metadata"]["name"] for d in of_kind(objects, "Deployment")}
    for hpa in of_kind(objects, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] in deployments


def test_every_setting_a_service_reads_is_set(objects):
    """Each `helios serve X` pod gets every HELIOS_* variable of X's settings group (from the
    ConfigMap it loads, or its own env), so no pod runs on a loopback default."""
    maps = configmaps(objects)
    for comp in COMPONENTS:
        d = deployment(objects, comp)
        [c] = d["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["helios", "serve", comp]
        names = {e["name"] for e in c.get("env", [])}
        for src in c.get("envFrom", []):
            names |= set(maps[src["configMapRef"]["name"]])
        wanted = {env_var(f) for f in GROUPS[comp].model_fields}
        assert wanted - names == set(), comp
        assert "MALLOC_ARENA_MAX" in {e["name"] for e in c["env"]}


def as_the_pod_sees_it(objs: list[dict], comp: str, env: dict[str, str],
                      root: Path) -> dict[str, str]:
    """``env`` plus what the pod's own env adds: a value for each required Secret reference
    (optional ones stay unset, as Kubernetes leaves them when the Secret does not exist),
    and the files of its mounted Secrets created under ``root`` (paths rewritten there)."""
    [c] = deployment(objs, comp)["spec"]["template"]["spec"]["containers"]
    pod = deployment(objs, comp)["spec"]["template"]["spec"]
    out = dict(env)
    for e in c.get("env", []):
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        if ref is not None and not ref.get("optional"):
            out[e["name"]] = f"from-secret-{ref['name']}-{ref['key']}"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        secret = volumes[m["name"]].get("secret")
        if secret is None:
            continue
        for item in secret["items"]:
            f = root / m["mountPath"].lstrip("/") / item["path"]
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text("PEM from the Secret\n")
        for k, v in out.items():
            if v.startswith(m["mountPath"] + "/"):
                out[k] = str(root / v.lstrip("/"))
    return out


def test_settings_values_are_what_the_services_accept(objects, tmp_path):
    """The rendered ConfigMap, with what each pod takes from Secrets (by reference) and
    mounts, loads into each settings group without an error, and points the services at
    each other and at the pod's network."""
    cfg = configmaps(objects)["helios-config"]
    env = {**cfg, "HELIOS_REDIS_URL": cfg.get("HELIOS_REDIS_URL", "redis://from-secret:6379/0")}
    for comp, group in GROUPS.items():
        pod_env = as_the_pod_sees_it(objects, comp, env, tmp_path / comp)
        s = group(**{k.removeprefix("HELIOS_").lower(): v for k, v in pod_env.items()
                     if k.removeprefix("HELIOS_").lower() in group.model_fields})
        assert s.bind_host == "0.0.0.0", comp
    assert cfg["HELIOS_PROFILE_ADDR"] == f"helios-profiles:{values_yaml()['profiles']['port']}"
    services = {s["metadata"]["name"] for s in of_kind(objects, "Service")}
    assert cfg["HELIOS_PROFILE_ADDR"].split(":")[0] in services
    assert cfg["HELIOS_HOME"].startswith("/tmp/")


def test_process_env_matches_helios_up():
    """MALLOC_ARENA_MAX as `helios up` gives its children (supervisor.child_env)."""
    from helios_pipeline.stack.supervisor import Supervisor

    child = Supervisor(Settings()).child_env()
    assert values_yaml()["processEnv"]["MALLOC_ARENA_MAX"] == child["MALLOC_ARENA_MAX"]


def test_config_change_rolls_the_pods():
    a = deployment(documents(render({})), "bidder")
    b = deployment(documents(render({"config": {"HELIOS_BIDDER_BATCH_SIZE": 100}})), "bidder")
    key = "checksum/config"
    assert (a["spec"]["template"]["metadata"]["annotations"][key]
            != b["spec"]["template"]["metadata"]["annotations"][key])


def test_ingress_routes_without_rewriting(rendered):
    objs = rendered["production"]
    [ing] = of_kind(objs, "Ingress")
    assert not any("rewrite" in k for k in ing["metadata"].get("annotations", {}))
    [rule] = ing["spec"]["rules"]
    assert rule["host"] == PRODUCTION["ingress"]["host"]
    routes = {p["path"]: (p["pathType"], p["backend"]["service"]["name"],
                          p["backend"]["service"]["port"]["name"]) for p in rule["http"]["paths"]}
    assert routes == {"/bid": ("Prefix", "helios-gateway", "http"),
                      "/bids": ("Prefix", "helios-gateway", "http"),
                      "/api/": ("Prefix", "helios-api", "http"),
                      "/": ("Prefix", "helios-api", "http")}
    services = {s["metadata"]["name"]: {p["name"] for p in s["spec"]["ports"]}
                for s in of_kind(objs, "Service")}
    assert all(port in services[svc] for _, svc, port in routes.values())
    assert ing["spec"]["tls"] == [{"secretName": "rtb-example-com-tls",
                                   "hosts": ["rtb.example.com"]}]


def _selected(policy: dict, labels: dict) -> bool:
    return labels.items() >= policy["spec"]["podSelector"].get("matchLabels", {}).items()


def pod_templates(objs: list[dict]) -> dict[str, tuple[dict, dict]]:
    """component -> (pod labels, pod spec) of every workload."""
    out = {}
    for o in objs:
        if o["kind"] in ("Deployment", "Job"):
            tpl = o["spec"]["template"]
            labels, spec = tpl["metadata"]["labels"], tpl["spec"]
        elif o["kind"] == "Pod":
            labels, spec = o["metadata"]["labels"], o["spec"]
        else:
            continue
        out[labels["app.kubernetes.io/component"]] = (labels, spec)
    return out


def test_network_policies_allow_only_what_each_pod_needs(rendered):
    objs = rendered["production"]
    policies = of_kind(objs, "NetworkPolicy")
    pods = pod_templates(objs)
    for comp, (labels, spec) in pods.items():
        mine = [p for p in policies if _selected(p, labels)]
        deny = [p for p in mine if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
                and not p["spec"].get("ingress") and not p["spec"].get("egress")]
        assert deny, f"{comp}: no default-deny policy selects it"
        ports = {p["name"] for c in spec["containers"] for p in c.get("ports", [])}
        for p in mine:
            for rule in p["spec"].get("ingress", []):
                for port in rule.get("ports", []):
                    assert port["port"] in ports, (comp, port)
    by_comp = {p["metadata"]["name"].removeprefix("helios-"): p for p in policies}
    # only bidders reach the profile service's gRPC port
    [grpc] = [r for r in by_comp["profiles"]["spec"]["ingress"]
              if r["ports"][0]["port"] == "grpc"]
    for peer in grpc["from"]:
        sel = peer["podSelector"]["matchLabels"].items()
        assert [c for c, (labels, _) in pods.items() if labels.items() >= sel] == ["bidder"]
    # the API talks to nothing but DNS; only the gateway, bidder, auctioneer and the topics
    # job reach Kafka; only the profile service reaches Redis
    assert by_comp["api"]["spec"]["egress"] == []

    def reaching(port: int) -> set[str]:
        return {c for c, p in by_comp.items() for r in p["spec"].get("egress") or []
                for rp in r["ports"] if rp["port"] == port}

    kafka = PRODUCTION["kafka"]["port"]
    assert reaching(kafka) == {"gateway", "bidder", "auctioneer", "topics"}
    for c in reaching(kafka):
        [r] = [r for r in by_comp[c]["spec"]["egress"] if r["ports"][0]["port"] == kafka]
        assert r["to"] == PRODUCTION["networkPolicy"]["kafkaTo"]
    assert reaching(PRODUCTION["redis"]["port"]) == {"profiles"}


def test_topics_hook_job_uses_values(rendered):
    [job] = of_kind(rendered["production"], "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    [c] = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HELIOS_PARTITIONS"] == str(PRODUCTION["topics"]["partitions"])
    assert env["HELIOS_REPLICATION_FACTOR"] == str(PRODUCTION["topics"]["replicationFactor"])
    assert env["HELIOS_KAFKA_BOOTSTRAP"] == PRODUCTION["kafka"]["bootstrap"]
    assert c["command"][:2] == ["python", "-c"]
    assert c["command"][2].strip() == (CHART / "files" / "create-topics.py").read_text().strip()
    compile(c["command"][2], "create-topics.py", "exec")
    # a pre-install hook runs before the release's objects exist: it needs none of them
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]
    assert "envFrom" not in c
    cfg = configmaps(rendered["production"])["helios-config"]
    assert cfg["HELIOS_CREATE_TOPICS"] == "false"
    no_job = configmaps(documents(render({"topics": {"create": {"enabled": False}}})))
    assert no_job["helios-config"]["HELIOS_CREATE_TOPICS"] == "true"


def test_helm_test_pod_posts_a_real_openrtb_request(rendered, examples):
    objs = rendered["defaults"]
    [pod] = of_kind(objs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    data = configmaps(objs)["helios-test"]
    shared = {p.read_bytes().strip() for p in examples}
    assert data["bid-request.json"].encode().strip() in shared
    assert data["helm-test.py"] == (CHART / "files" / "helm-test.py").read_text()
    [c] = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HELIOS_TEST_GATEWAY"] == f"http://helios-gateway:{values_yaml()['gateway']['port']}"


def test_dagster_configmap(rendered):
    base = configmaps(rendered["defaults"])["helios-dagster"]
    # the code location binds both from the environment: always set (DuckDB by default)
    assert base["HELIOS_WAREHOUSE_BACKEND"] == "duckdb"
    assert "HELIOS_WAREHOUSE_DSN" not in base  # a credential: from the Secret only
    data = values_yaml()["dagster"]["dataDir"]
    for var in ("HELIOS_WAREHOUSE_PATH", "HELIOS_REPORTS_DIR", "HELIOS_EXPORTS_DIR",
                "HELIOS_SERVING_PATH"):
        assert base[var].startswith(data + "/"), var
    assert base["HELIOS_SERVING_PATH"] == configmaps(rendered["defaults"])["helios-config"][
        "HELIOS_SERVING_PATH"]  # what the API mounts is what the runs publish
    prod = configmaps(rendered["production"])["helios-dagster"]
    assert prod["HELIOS_WAREHOUSE_BACKEND"] == "postgres"
    assert "HELIOS_WAREHOUSE_DSN" not in prod  # a credential: from the Secret only
    known = set(Settings.model_fields) | {"warehouse_backend"}
    assert {k.removeprefix("HELIOS_").lower() for k in prod} <= known


def test_api_mounts_the_serving_volume_read_only(rendered):
    d = deployment(rendered["production"], "api")["spec"]["template"]["spec"]
    [vol] = [v for v in d["volumes"] if v["name"] == "serving"]
    assert vol["persistentVolumeClaim"] == {"claimName": "helios-data", "readOnly": True}
    [c] = d["containers"]
    [m] = [m for m in c["volumeMounts"] if m["name"] == "serving"]
    assert m["readOnly"] is True
    cfg = configmaps(rendered["production"])["helios-config"]
    assert cfg["HELIOS_SERVING_PATH"].startswith(m["mountPath"] + "/")


def test_notes_render(rendered):
    notes = render(EVERYTHING)["helios/templates/NOTES.txt"]
    assert "helm test helios" in notes and "helios-gateway" in notes


def test_api_keys_are_on_by_default_and_come_from_the_secret_only():
    """#9: API keys on by default in the chart, by reference to a Secret; the helm test pod
    sends one; auth.enabled=false renders no reference (and no literal key ever)."""
    on = documents(render({}))
    for comp, var in (("gateway", "HELIOS_GATEWAY_API_KEYS"), ("api", "HELIOS_API_KEYS")):
        [c] = deployment(on, comp)["spec"]["template"]["spec"]["containers"]
        [env] = [e for e in c["env"] if e["name"] == var]
        assert env["valueFrom"]["secretKeyRef"]["name"] == "helios-api-keys", comp
        assert "value" not in env
    [test_pod] = [d for d in on if d["kind"] == "Pod"]
    names = {e["name"] for e in test_pod["spec"]["containers"][0]["env"]}
    assert "HELIOS_TEST_API_KEYS" in names
    off = documents(render({"auth": {"enabled": False}}))
    [c] = deployment(off, "gateway")["spec"]["template"]["spec"]["containers"]
    [env] = [e for e in c["env"] if e["name"] == "HELIOS_GATEWAY_API_KEYS"]
    assert env == {"name": "HELIOS_GATEWAY_API_KEYS", "value": ""}


def test_kafka_transactions_value_reaches_the_bidder_and_auctioneer():
    """kafka.transactions → HELIOS_KAFKA_TRANSACTIONS in the ConfigMap the consumers load
    (off by default: it needs a broker with working transactions, docs/reliability.md)."""
    from ingest_services.settings import AuctioneerSettings, BidderSettings

    assert configmaps(documents(render({})))["helios-config"][
        "HELIOS_KAFKA_TRANSACTIONS"] == "false"
    objs = documents(render({"kafka": {"transactions": True}}))
    cfg = configmaps(objs)["helios-config"]
    for comp, group in (("bidder", BidderSettings), ("auctioneer", AuctioneerSettings)):
        [c] = deployment(objs, comp)["spec"]["template"]["spec"]["containers"]
        assert {"configMapRef": {"name": "helios-config"}} in c["envFrom"]
        s = group(**{k.removeprefix("HELIOS_").lower(): v for k, v in cfg.items()
                     if k.removeprefix("HELIOS_").lower() in group.model_fields})
        assert s.kafka_transactions is True, comp


KAFKA_CLIENTS = ("gateway", "bidder", "auctioneer")  # and the topics Job


def kafka_pods(objs: list[dict]) -> dict[str, tuple[dict, dict]]:
    """(pod spec, container) of every pod with a Kafka client, and of the others."""
    out = {}
    for comp in COMPONENTS:
        pod = deployment(objs, comp)["spec"]["template"]["spec"]
        out[comp] = (pod, pod["containers"][0])
    [job] = of_kind(objs, "Job")
    out["topics"] = (job["spec"]["template"]["spec"], job["spec"]["template"]["spec"][
        "containers"][0])
    return out


def secret_ref(container: dict, var: str) -> dict | None:
    [e] = [e for e in container["env"] if e["name"] == var] or [None]
    return None if e is None else e["valueFrom"]["secretKeyRef"]


def test_sasl_scram_over_tls_reaches_every_kafka_client_by_reference(rendered):
    """Strimzi-style values: protocol, mechanism and user in the ConfigMap (and in the hook
    Job's own env: it runs before the ConfigMap exists), the password only as a reference to
    the user's Secret, the cluster CA mounted read-only where HELIOS_KAFKA_SSL_CA_LOCATION
    points — in the gateway, bidder, auctioneer and topics Job, and not elsewhere."""
    objs = rendered["secured"]
    sec = SECURED["kafka"]["security"]
    cfg = configmaps(objs)["helios-config"]
    assert cfg["HELIOS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert cfg["HELIOS_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert cfg["HELIOS_KAFKA_SASL_USERNAME"] == "helios"
    ca_path = cfg["HELIOS_KAFKA_SSL_CA_LOCATION"]
    assert ca_path.endswith("/ca.crt") and cfg["HELIOS_KAFKA_SSL_CERTIFICATE_LOCATION"] == ""
    _pod, job = kafka_pods(objs)["topics"]
    job_env = {e["name"]: e.get("value") for e in job["env"]}
    for var, value in cfg.items():
        if var.startswith(("HELIOS_KAFKA_SECURITY", "HELIOS_KAFKA_SASL", "HELIOS_KAFKA_SSL")):
            assert job_env[var] == value, var
    for name, (pod, c) in kafka_pods(objs).items():
        ref = secret_ref(c, "HELIOS_KAFKA_SASL_PASSWORD")
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        if name not in (*KAFKA_CLIENTS, "topics"):
            assert ref is None and "/etc/helios/kafka/ca" not in mounts, name
            continue
        assert ref == {"name": "helios", "key": "password", "optional": False}, name
        m = mounts[ca_path.rsplit("/", 1)[0]]
        assert m["readOnly"] is True
        [vol] = [v for v in pod["volumes"] if v["name"] == m["name"]]
        assert vol["secret"] == {"secretName": sec["tls"]["caSecret"],
                                 "items": [{"key": "ca.crt", "path": "ca.crt"}]}, name


def test_mutual_tls_mounts_the_client_certificate_and_references_its_key_password(rendered):
    objs = rendered["everything"]
    cfg = configmaps(objs)["helios-config"]
    assert cfg["HELIOS_KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert cfg["HELIOS_KAFKA_SASL_MECHANISM"] == cfg["HELIOS_KAFKA_SASL_USERNAME"] == ""
    cert, key = cfg["HELIOS_KAFKA_SSL_CERTIFICATE_LOCATION"], cfg["HELIOS_KAFKA_SSL_KEY_LOCATION"]
    for name in (*KAFKA_CLIENTS, "topics"):
        pod, c = kafka_pods(objs)[name]
        assert secret_ref(c, "HELIOS_KAFKA_SSL_KEY_PASSWORD") == {
            "name": "helios", "key": "user.password", "optional": False}
        assert secret_ref(c, "HELIOS_KAFKA_SASL_PASSWORD")["optional"] is True  # no SASL
        [m] = [m for m in c["volumeMounts"] if m["mountPath"] == cert.rsplit("/", 1)[0]]
        [vol] = [v for v in pod["volumes"] if v["name"] == m["name"]]
        assert vol["secret"]["secretName"] == "helios"
        assert {i["path"] for i in vol["secret"]["items"]} == {
            cert.rsplit("/", 1)[1], key.rsplit("/", 1)[1]}


def test_plaintext_by_default_mounts_nothing_and_requires_no_secret(rendered):
    objs = rendered["defaults"]
    cfg = configmaps(objs)["helios-config"]
    assert cfg["HELIOS_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert all(cfg[v] == "" for v in ("HELIOS_KAFKA_SASL_MECHANISM", "HELIOS_KAFKA_SASL_USERNAME",
                                      "HELIOS_KAFKA_SSL_CA_LOCATION"))
    for name, (pod, c) in kafka_pods(objs).items():
        assert not [v for v in pod["volumes"] if v["name"].startswith("kafka-")], name
        for var in ("HELIOS_KAFKA_SASL_PASSWORD", "HELIOS_KAFKA_SSL_KEY_PASSWORD"):
            ref = secret_ref(c, var)
            assert ref is None or ref["optional"] is True, (name, var)
