"""The Helm chart, rendered and linted by the real Helm v4 engine (helm-python-sdk, libhelm) and every
manifest validated against the Kubernetes 1.30 schemas (kubernetes-validate)."""

from __future__ import annotations

import base64
import json
import re
import tarfile

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from hub.rules.load import load_rules
from tests.ops.conftest import CHART, DEPLOY, ROOT

K8S = "1.30.0"
PRODUCTION = yaml.safe_load((DEPLOY / "examples" / "values-production.yaml").read_text())
SENTINELS = {"httpIngestToken": "sentinel-http-7Qf2", "fhirToken": "sentinel-fhir-9Zk1",
             "fhirClientSecret": "sentinel-oauth-3Lm8", "kafkaSaslPassword": "sentinel-sasl-5Rt4",
             "databasePassword": "sentinel-db-2Hx6"}
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
WORKLOADS = {"Deployment", "StatefulSet"}


def render(values: dict | None = None, name: str = "devsync") -> list[dict]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values or {}, name=name, namespace="devsync")
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, suffix: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    assert len(found) == 1, f"{kind} *{suffix}: {[d['metadata']['name'] for d in found]}"
    return found[0]


@pytest.fixture(scope="module")
def default_docs():
    return render()


@pytest.fixture(scope="module")
def production_docs():
    return render(PRODUCTION)


@pytest.fixture(scope="module", params=["default", "production"])
def docs(request, default_docs, production_docs):
    return default_docs if request.param == "default" else production_docs


@pytest.mark.parametrize("values", [{}, PRODUCTION], ids=["default", "production"])
def test_helm_lint_has_no_errors_or_warnings(values):
    report = helm.lint(CHART, values, strict=True, kube_version=f"v{K8S}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_helm_lint_reports_bad_values():
    report = helm.lint(CHART, {"worker": {"replicaCount": "two"}}, kube_version=f"v{K8S}")
    problems = report["errors"] + [m["error"] for m in report["messages"] if m["severity"] == 3]
    assert problems and any("replicaCount" in p for p in problems)


def test_every_manifest_validates_against_kubernetes_1_30(docs):
    kinds = set()
    for doc in docs:
        kinds.add(doc["kind"])
        if doc["kind"] in CRD_KINDS:
            continue  # CRDs of the prometheus-operator: not in the Kubernetes schemas (checked below)
        kubernetes_validate.validate(doc, K8S, strict=True)
    assert {"Deployment", "StatefulSet", "Service", "ConfigMap", "HorizontalPodAutoscaler",
            "PodDisruptionBudget", "NetworkPolicy", "ServiceAccount"} <= kinds  # Secret: only without existingSecret


def test_schema_validation_catches_a_broken_manifest(default_docs):
    broken = json.loads(json.dumps(one(default_docs, "Deployment", "-worker")))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "metrics"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S, strict=True)


def test_pods_run_non_root_with_read_only_root_and_no_capabilities(docs):
    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    assert len(workloads) == 3
    for w in workloads:
        pod = w["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
            assert {"requests", "limits"} <= set(c["resources"])
            assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])  # writable scratch on a read-only root


def test_probes_are_wired_to_healthz_and_readyz_on_the_metrics_port(docs):
    for w in (d for d in docs if d["kind"] in WORKLOADS):
        for c in w["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports["metrics"] == 9464
            assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
            assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
            assert {"name": "DEVSYNC_HEALTH_HOST", "value": "0.0.0.0"} in c["env"]


def test_edge_gateway_buffers_on_its_persistent_volume_claim(default_docs, production_docs):
    for docs, size, storage_class in ((default_docs, "5Gi", None), (production_docs, "20Gi", "fast-local")):
        sts = one(docs, "StatefulSet", "-edge")
        claim = sts["spec"]["volumeClaimTemplates"][0]
        assert claim["metadata"]["name"] == "buffer"
        assert claim["spec"]["resources"]["requests"]["storage"] == size
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert claim["spec"].get("storageClassName") == storage_class
        container = sts["spec"]["template"]["spec"]["containers"][0]
        mount = next(m for m in container["volumeMounts"] if m["name"] == "buffer")
        buffer_arg = next(a for a in container["args"] if a.startswith("--buffer="))
        assert buffer_arg.split("=", 1)[1].startswith(mount["mountPath"] + "/")
        assert sts["spec"]["serviceName"] == one(docs, "Service", "-edge")["metadata"]["name"]
        assert one(docs, "Service", "-edge")["spec"]["clusterIP"] == "None"


def test_rules_configmap_checksum_rolls_pods_on_change(default_docs):
    changed = render({"rules": {"files": {"ward.yaml": (ROOT / "rules" / "ward.yaml").read_text() + "\n# edited\n"}}})
    for docs in (default_docs, changed):
        sums = {w["spec"]["template"]["metadata"]["annotations"]["checksum/rules"]
                for w in docs if w["kind"] in WORKLOADS}
        assert len(sums) == 1 and re.fullmatch(r"[0-9a-f]{64}", sums.pop())
    before = one(default_docs, "Deployment", "-worker")["spec"]["template"]["metadata"]["annotations"]
    after = one(changed, "Deployment", "-worker")["spec"]["template"]["metadata"]["annotations"]
    assert before["checksum/rules"] != after["checksum/rules"]
    assert render()[0] == default_docs[0]  # and stable for the same rules
    again = one(render(), "Deployment", "-worker")["spec"]["template"]["metadata"]["annotations"]
    assert again["checksum/rules"] == before["checksum/rules"]


@pytest.mark.parametrize("values", [{}, PRODUCTION], ids=["default", "production"])
def test_rendered_rule_files_load_in_the_hub(values, tmp_path):
    configmap = one(render(values), "ConfigMap", "-rules")
    for name, text in configmap["data"].items():
        (tmp_path / name).write_text(text)
    rules = load_rules(tmp_path)
    assert rules.connectors.mllp.host == "0.0.0.0" and rules.connectors.mllp.port == 2575
    assert rules.connectors.http.token_file == "/etc/devsync/secrets/http-ingest-token"
    assert rules.connectors.mqtt is None  # the chart's connectors.yaml replaced the 127.0.0.1 listeners
    if not values:
        assert len(rules.devices) > 0  # the repository's default ward
    else:
        assert rules.sinks.fhir.auth.token_file == "/etc/devsync/secrets/fhir-token"
        assert "@" in rules.runtime.database_url and ":" not in rules.runtime.database_url.split("//")[1].split("@")[0]


def test_service_monitor_and_prometheus_rule_are_behind_toggles(default_docs, production_docs):
    assert not [d for d in default_docs if d["kind"] in CRD_KINDS]
    monitor = one(production_docs, "ServiceMonitor", "devsync")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    selected = [s for s in by_kind(production_docs, "Service")
                if all(s["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())]
    assert {s["metadata"]["name"] for s in selected} == {"devsync-ingest", "devsync-worker-metrics", "devsync-edge"}
    assert all(any(p["name"] == "metrics" for p in s["spec"]["ports"]) for s in selected)
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics" and monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    rule = one(production_docs, "PrometheusRule", "devsync")
    assert rule["spec"] == yaml.safe_load((DEPLOY / "prometheus" / "alerts.yaml").read_text())


def test_worker_scales_with_an_hpa_and_keeps_a_disruption_budget(default_docs):
    hpa = one(default_docs, "HorizontalPodAutoscaler", "-worker")
    deployment = one(default_docs, "Deployment", "-worker")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert "replicas" not in deployment["spec"]  # the HPA owns the replica count
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    fixed = render({"worker": {"autoscaling": {"enabled": False}, "replicaCount": 3}})
    assert not by_kind(fixed, "HorizontalPodAutoscaler")
    assert one(fixed, "Deployment", "-worker")["spec"]["replicas"] == 3
    for component in ("worker", "ingest"):
        pdb = one(default_docs, "PodDisruptionBudget", f"-{component}")
        pod_labels = one(default_docs, "Deployment", f"-{component}")["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
        assert pdb["spec"]["minAvailable"] == 1


def test_ingest_service_exposes_mllp_and_http(default_docs, production_docs):
    service = one(default_docs, "Service", "-ingest")
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"mllp": 2575, "http": 8080, "metrics": 9464}
    pods = one(default_docs, "Deployment", "-ingest")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pods.items()
    prod = one(production_docs, "Service", "-ingest")
    assert prod["spec"]["type"] == "LoadBalancer" and prod["spec"]["loadBalancerSourceRanges"] == ["10.20.0.0/16"]


def test_network_policies_limit_ingress_per_component(default_docs, production_docs):
    policies = {p["metadata"]["name"]: p for p in by_kind(default_docs, "NetworkPolicy")}
    assert set(policies) == {"devsync-worker", "devsync-ingest", "devsync-edge"}
    worker_ports = [port["port"] for rule in policies["devsync-worker"]["spec"]["ingress"] for port in rule["ports"]]
    assert worker_ports == [9464]  # workers take no device traffic
    ingest_ports = {port["port"] for rule in policies["devsync-ingest"]["spec"]["ingress"] for port in rule["ports"]}
    assert ingest_ports == {9464, 2575, 8080}
    assert policies["devsync-ingest"]["spec"]["policyTypes"] == ["Ingress"]
    prod = one(production_docs, "NetworkPolicy", "-ingest")
    device_rule = next(r for r in prod["spec"]["ingress"] if any(p["port"] == 2575 for p in r["ports"]))
    assert device_rule["from"] == [{"ipBlock": {"cidr": "10.20.0.0/16"}}]
    assert prod["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert {"port": 53, "protocol": "UDP"} in prod["spec"]["egress"][0]["ports"]
    assert not by_kind(render({"networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_no_secret_value_is_rendered_outside_the_secret():
    docs = render({"secrets": SENTINELS})
    secret = one(docs, "Secret", "-secrets")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(SENTINELS.values()) == set(decoded.values())
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for value in SENTINELS.values():
            assert value not in text and base64.b64encode(value.encode()).decode() not in text, doc["kind"]
    for configmap in by_kind(docs, "ConfigMap"):
        assert not re.search(r"(?i)(password|secret|token)\s*:\s*[^/\s]", "\n".join(configmap["data"].values()))


def test_existing_secret_is_used_and_none_is_rendered(production_docs):
    assert not by_kind(production_docs, "Secret")
    for w in (d for d in production_docs if d["kind"] in WORKLOADS):
        pod = w["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["secrets"]["secret"]["secretName"] == "devsync-secrets"
        assert volumes["tls"]["secret"]["secretName"] == "devsync-tls"
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["DEVSYNC_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "devsync-secrets"
        assert env["DEVSYNC_KAFKA_SSL_CAFILE"]["value"] == "/etc/devsync/tls/ca.crt"


def test_values_schema_rejects_bad_values():
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(PRODUCTION)
        for bad in ({"edge": {"upstream": "carrier-pigeon"}}, {"kafka": {"bootstrap": "no-port"}},
                    {"metrics": {"port": 70000}}, {"wokrer": {}}):
            with pytest.raises(helm.HelmError):
                chart.validate_schema(bad)


def test_mqtt_upstream_needs_a_broker():
    with pytest.raises(helm.HelmError, match="edge.mqttBroker"):
        render({"edge": {"upstream": "mqtt"}})
    sts = one(render({"edge": {"upstream": "mqtt", "mqttBroker": "mqtt.site:8883"}}), "StatefulSet", "-edge")
    assert "--mqtt=mqtt.site:8883" in sts["spec"]["template"]["spec"]["containers"][0]["args"]


def documented_values() -> dict[str, str]:
    """Dotted value paths that carry a `# --` comment in values.yaml."""
    docs, stack, pending = {}, [], None
    for line in (CHART / "values.yaml").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = stripped[4:].strip()
            continue
        if stripped.startswith("#") and pending:  # a comment continued on the next line
            pending += " " + stripped[1:].strip()
            continue
        match = re.match(r"^(\s*)([A-Za-z0-9_]+):", line)
        if match and not stripped.startswith("-"):
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, match.group(2)))
            if pending:
                docs[".".join(k for _, k in stack)] = pending
        if not stripped.startswith("#"):
            pending = None
    return docs


def test_every_value_is_camel_case_commented_typed_and_in_the_readme():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = documented_values()
    schema = json.loads((CHART / "values.schema.json").read_text())
    readme = (CHART / "README.md").read_text()

    def walk(path: str, node) -> list[str]:
        if path in docs:
            return [path]
        assert isinstance(node, dict), f"value {path} has no '# --' comment"
        return [p for k, v in node.items() for p in walk(f"{path}.{k}" if path else k, v)]

    for path in walk("", values):
        assert all(re.fullmatch(r"[a-z][A-Za-z0-9]*", part) for part in path.split(".")), f"not camelCase: {path}"
        assert f"| `{path}` |" in readme, f"{path} missing from README.md"
        node = schema
        for part in path.split("."):
            node = node["properties"][part]
        assert node.get("description") == docs[path], path


def test_chart_ships_the_repository_rules_and_alerts(tmp_path):
    """files/rules and files/alerts.yaml are symlinks to rules/ and deploy/prometheus/alerts.yaml, so
    they cannot drift; `helm package` stores their contents."""
    assert (CHART / "files" / "rules").resolve() == (ROOT / "rules").resolve()
    assert (CHART / "files" / "alerts.yaml").resolve() == (DEPLOY / "prometheus" / "alerts.yaml").resolve()
    archive = helm.package(CHART, destination=tmp_path)
    with tarfile.open(archive) as tar:
        packed = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert packed["devsync/files/alerts.yaml"] == (DEPLOY / "prometheus" / "alerts.yaml").read_bytes()
    for path in (ROOT / "rules").glob("*.yaml"):
        assert packed[f"devsync/files/rules/{path.name}"] == path.read_bytes()
    assert yaml.safe_load(packed["devsync/Chart.yaml"])["name"] == "devsync"
