"""Kubernetes manifests in deploy/: render every overlay with `kubectl kustomize`, validate each
document offline against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown
fields are errors too), hand-check the CRD kinds, and assert the deployment policies.

Needs `kubectl` (for its built-in kustomize); without it these tests FAIL, they never skip.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from streams.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = ("staging", "production")
# the Kubernetes version whose bundled schemas (kubernetes-validate) the core kinds are checked against
K8S_VERSION = "1.32.0"
PARTITIONS = 6  # kafka.topic_partitions of deploy/base/bridge.yaml
# the workers' kind: a StatefulSet keeps pod names across restarts and rolling updates, which static
# group membership (kafka.group_instance_id: ${POD_NAME}) needs (docs/deploy.md, "Fast restarts")
WORKLOAD = "StatefulSet"
SECRET_NAME = "s2s-bridge-secrets"
# keys of the out-of-band Secret (docs/deploy.md); nothing else may be secret
SECRET_KEYS = {"KAFKA_USERNAME", "KAFKA_PASSWORD", "ZEOTAP_WRITE_KEY"}
SECRET_FIELDS = {"password", "write_key", "api_key", "oauth_client_secret", "key_password"}
SECRET_NAME_RE = re.compile(r"PASSWORD|SECRET|TOKEN|WRITE_KEY|API_KEY|CREDENTIAL", re.I)
PLACEHOLDER = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*\}$")
KEDA_SASL = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512", "OAUTHBEARER": "oauthbearer"}
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


# --------------------------------------------------------------------------- rendering


def kubectl() -> str:
    path = shutil.which("kubectl") or ("/usr/bin/kubectl" if os.access("/usr/bin/kubectl", os.X_OK) else None)
    if path is None:
        pytest.fail(
            "kubectl not found (PATH or /usr/bin/kubectl): it is needed to render deploy/overlays/* with "
            "`kubectl kustomize`; install kubectl >= 1.27 — these tests never skip",
            pytrace=False,
        )
    return path


@functools.cache
def _render(overlay: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "overlays" / overlay)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"kubectl kustomize deploy/overlays/{overlay} failed:\n{proc.stderr}"
    docs = tuple(d for d in yaml.safe_load_all(proc.stdout) if d)
    assert docs, f"deploy/overlays/{overlay} rendered nothing"
    return docs


def render(overlay: str) -> list[dict[str, Any]]:
    return list(_render(overlay))


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def bridge_yaml(docs: list[dict[str, Any]]) -> str:
    return one(docs, "ConfigMap", "s2s-bridge-config")["data"]["bridge.yaml"]


def env_config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, "ConfigMap", "s2s-bridge-env")["data"]


# --------------------------------------------------------------------------- CRD checks


class CrdError(ValueError):
    pass


def _need(cond: bool, doc: dict[str, Any], msg: str) -> None:
    if not cond:
        raise CrdError(f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {msg}")


def _check_servicemonitor(doc: dict[str, Any]) -> None:
    spec = doc.get("spec")
    _need(isinstance(spec, dict), doc, "spec must be a mapping")
    sel = spec.get("selector")
    _need(isinstance(sel, dict) and bool(sel.get("matchLabels") or sel.get("matchExpressions")), doc, "spec.selector is required")
    eps = spec.get("endpoints")
    _need(isinstance(eps, list) and len(eps) > 0, doc, "spec.endpoints must be a non-empty list")
    for ep in eps:
        _need(isinstance(ep, dict) and bool(ep.get("port") or ep.get("targetPort")), doc, "each endpoint needs port")
        _need(str(ep.get("path", "/metrics")).startswith("/"), doc, "endpoint path must start with /")


KAFKA_TRIGGER_KEYS = ("bootstrapServers", "consumerGroup", "topic", "lagThreshold")


def _check_scaledobject(doc: dict[str, Any]) -> None:
    spec = doc.get("spec")
    _need(isinstance(spec, dict), doc, "spec must be a mapping")
    ref = spec.get("scaleTargetRef")
    _need(isinstance(ref, dict) and isinstance(ref.get("name"), str) and ref["name"], doc, "spec.scaleTargetRef.name is required")
    for k in ("minReplicaCount", "maxReplicaCount", "pollingInterval", "cooldownPeriod"):
        if k in spec:
            _need(
                isinstance(spec[k], int) and not isinstance(spec[k], bool) and spec[k] >= 0, doc, f"spec.{k} must be an int >= 0"
            )
    triggers = spec.get("triggers")
    _need(isinstance(triggers, list) and len(triggers) > 0, doc, "spec.triggers must be a non-empty list")
    for t in triggers:
        _need(isinstance(t, dict) and isinstance(t.get("type"), str), doc, "each trigger needs a type")
        md = t.get("metadata")
        _need(isinstance(md, dict) and all(isinstance(v, str) for v in md.values()), doc, "trigger metadata: string values")
        if t["type"] == "kafka":
            for k in KAFKA_TRIGGER_KEYS:
                _need(bool(md.get(k)), doc, f"kafka trigger needs metadata.{k}")
            _need(md["lagThreshold"].isdigit() and int(md["lagThreshold"]) > 0, doc, "lagThreshold must be a positive integer")


def _check_triggerauthentication(doc: dict[str, Any]) -> None:
    spec = doc.get("spec")
    _need(isinstance(spec, dict), doc, "spec must be a mapping")
    refs = spec.get("secretTargetRef")
    _need(isinstance(refs, list) and len(refs) > 0, doc, "spec.secretTargetRef must be a non-empty list")
    for r in refs:
        _need(
            isinstance(r, dict) and all(isinstance(r.get(k), str) and r[k] for k in ("parameter", "name", "key")),
            doc,
            "secretTargetRef entries need parameter, name, key",
        )


def _check_prometheusrule(doc: dict[str, Any]) -> None:
    # the full structure check lives with the rule tests (tests/deploy/test_observability.py)
    from tests.deploy.test_observability import RuleError, check_prometheus_rule

    try:
        check_prometheus_rule(doc)
    except RuleError as exc:
        raise CrdError(str(exc)) from None


CRD_CHECKS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _check_servicemonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): _check_prometheusrule,
    ("keda.sh/v1alpha1", "ScaledObject"): _check_scaledobject,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _check_triggerauthentication,
}


def validate(doc: dict[str, Any]) -> None:
    """Core kinds: the Kubernetes schemas (strict); known CRD kinds: the hand checks; anything else fails."""
    assert isinstance(doc.get("metadata", {}).get("name") or doc.get("metadata", {}).get("generateName"), str)
    check = CRD_CHECKS.get((doc.get("apiVersion"), doc.get("kind")))
    if check is not None:
        check(doc)
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


# --------------------------------------------------------------------------- tests: validity


def test_every_overlay_is_tested() -> None:
    found = {p.name for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").is_file()}
    assert found == set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates(overlay: str) -> None:
    docs = render(overlay)
    kinds = {d["kind"] for d in docs}
    expected = {
        "ServiceAccount",
        "ConfigMap",
        WORKLOAD,
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "TriggerAuthentication",
    }
    assert expected <= kinds, f"missing kinds: {expected - kinds}"
    errors = []
    for d in docs:
        try:
            validate(d)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError, CrdError) as exc:
            errors.append(f"{d['kind']}/{d['metadata'].get('name')}: {exc}")
    assert not errors, "\n".join(errors)
    namespaces = {d["metadata"].get("namespace") for d in docs}
    assert len(namespaces) == 1 and None not in namespaces, f"every object in one namespace: {namespaces}"


def test_validator_rejects_a_broken_workload() -> None:
    docs = render("production")
    broken = yaml.safe_load(yaml.safe_dump(one(docs, WORKLOAD)))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError, match="two"):
        validate(broken)


def test_validator_rejects_an_unknown_field() -> None:
    # strict schemas: a misspelt field is an error, not silently dropped by the API server
    docs = render("production")
    broken = yaml.safe_load(yaml.safe_dump(one(docs, WORKLOAD)))
    sc = broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    sc["readOnlyRootFileSystem"] = sc.pop("readOnlyRootFilesystem")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


def test_crd_check_rejects_a_kafka_trigger_without_lag_threshold() -> None:
    docs = render("production")
    broken = yaml.safe_load(yaml.safe_dump(one(docs, "ScaledObject")))
    del broken["spec"]["triggers"][0]["metadata"]["lagThreshold"]
    with pytest.raises(CrdError, match="lagThreshold"):
        validate(broken)


# --------------------------------------------------------------------------- tests: policies


def _pod_policy(pod: dict[str, Any], where: str) -> None:
    psc = pod.get("securityContext", {})
    assert psc.get("runAsNonRoot") is True, f"{where}: pod runAsNonRoot"
    assert psc.get("runAsUser", 0) != 0, f"{where}: pod runAsUser must not be 0"
    assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccompProfile RuntimeDefault"
    assert pod.get("automountServiceAccountToken") is False, f"{where}: no service account token"
    tmp_volumes = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c.get("securityContext", {})
        assert sc.get("readOnlyRootFilesystem") is True, f"{where}/{c['name']}: readOnlyRootFilesystem"
        assert sc.get("allowPrivilegeEscalation") is False, f"{where}/{c['name']}: allowPrivilegeEscalation false"
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{where}/{c['name']}: drop ALL capabilities"
        assert not sc.get("capabilities", {}).get("add"), f"{where}/{c['name']}: no added capabilities"
        assert sc.get("privileged") is not True
        assert sc.get("runAsUser", psc.get("runAsUser")) != 0
        tmp = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
        assert tmp and tmp[0]["name"] in tmp_volumes, f"{where}/{c['name']}: /tmp must be an emptyDir (read-only root fs)"
        res = c.get("resources", {})
        assert {"cpu", "memory"} <= set(res.get("requests", {})) and {"cpu", "memory"} <= set(res.get("limits", {}))
        env_from = c.get("envFrom", [])
        assert {"secretRef": {"name": SECRET_NAME}} in env_from, f"{where}/{c['name']}: secrets from {SECRET_NAME}"
        env = {e["name"]: e for e in c.get("env", [])}
        for name, e in env.items():
            assert not (SECRET_NAME_RE.search(name) and "value" in e), f"{where}: literal secret in env {name}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_security_policy(overlay: str) -> None:
    _pod_policy(one(render(overlay), WORKLOAD)["spec"]["template"]["spec"], f"{overlay}/{WORKLOAD}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_ports_and_grace_period_match_the_config(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    cfg = _load(docs, tmp_path)
    pod = one(docs, WORKLOAD)["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports.get("metrics") == cfg.metrics.port == 9108

    def port_of(probe: dict[str, Any]) -> int:
        p = probe["httpGet"]["port"]
        return ports[p] if isinstance(p, str) else p

    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" and port_of(c["livenessProbe"]) == cfg.metrics.port
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz" and port_of(c["readinessProbe"]) == cfg.metrics.port
    if "startupProbe" in c:
        assert port_of(c["startupProbe"]) == cfg.metrics.port
    assert c["args"][-2:] == ["--config", "/etc/s2s-bridge/bridge.yaml"]
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/etc/s2s-bridge")
    vol = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert vol["configMap"]["name"] == one(docs, "ConfigMap", "s2s-bridge-config")["metadata"]["name"]
    # SIGTERM -> drain for shutdown_grace_s -> commit and leave the group, before the SIGKILL
    assert pod["terminationGracePeriodSeconds"] >= cfg.worker.shutdown_grace_s + 5

    svc = one(docs, "Service")
    (sp,) = svc["spec"]["ports"]
    assert sp["name"] == "metrics" and ports.get(sp["targetPort"], sp["targetPort"]) == cfg.metrics.port
    assert svc["spec"]["selector"].items() <= pod_labels(docs).items()
    sm = one(docs, "ServiceMonitor")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert [e["port"] for e in sm["spec"]["endpoints"]] == ["metrics"]


def pod_labels(docs: list[dict[str, Any]]) -> dict[str, str]:
    return one(docs, WORKLOAD)["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaling_stays_within_partitions(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    cfg = _load(docs, tmp_path)
    assert cfg.kafka.topic_partitions == PARTITIONS
    dep = one(docs, WORKLOAD)
    # the ScaledObject owns the replica count; a fixed one, if any, must fit too
    assert dep["spec"].get("replicas", 1) <= PARTITIONS
    up = dep["spec"]["updateStrategy"]
    assert up["type"] == "RollingUpdate", "rolling update"
    # one pod at a time, replaced under its own name (a StatefulSet never adds a surge pod)
    ru = up.get("rollingUpdate", {})
    assert ru.get("maxUnavailable", 1) == 1 and ru.get("partition", 0) == 0
    so = one(docs, "ScaledObject")
    assert so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
    assert so["spec"]["scaleTargetRef"]["kind"] == WORKLOAD
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"] <= PARTITIONS
    env = env_config(docs)
    # a rate budget is shared by at most maxReplicaCount workers: each takes its share, so the
    # deployment stays within the budget even scaled out (Zeotap's 200 QPS is about the source)
    assert int(env["S2S_MAX_REPLICAS"]) == so["spec"]["maxReplicaCount"]
    for name, dest in cfg.destinations.items():
        if dest.rate_budget_rps is not None:
            assert dest.rate_budget_workers == so["spec"]["maxReplicaCount"], name
            assert (dest.worker_rate_rps or 0) * so["spec"]["maxReplicaCount"] <= dest.rate_budget_rps + 1e-9, name
    assert cfg.destinations["zeotap"].rate_budget_rps == 200
    topics = set()
    for t in so["spec"]["triggers"]:
        assert t["type"] == "kafka"
        md = t["metadata"]
        assert md["bootstrapServers"] == env["KAFKA_BOOTSTRAP_SERVERS"] == cfg.kafka.bootstrap_servers
        assert md["consumerGroup"] == env["BRIDGE_GROUP_ID"] == cfg.kafka.group_id
        assert md.get("allowIdleConsumers", "false") == "false"
        # the scaler authenticates like the bridge does
        assert cfg.kafka.sasl is not None
        assert md["sasl"] == KEDA_SASL[cfg.kafka.sasl.mechanism]
        assert md["tls"] == ("enable" if cfg.kafka.security_protocol.endswith("SSL") else "disable")
        topics.add(md["topic"])
        auth = one(docs, "TriggerAuthentication", t["authenticationRef"]["name"])
        assert {r["name"] for r in auth["spec"]["secretTargetRef"]} == {SECRET_NAME}
        assert {r["key"] for r in auth["spec"]["secretTargetRef"]} <= SECRET_KEYS
    assert topics == {r.topic for r in cfg.routes.values()}, "one lag trigger per consumed topic"
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels(docs).items()
    aff = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert aff[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"


# --------------------------------------------------------------------------- tests: secrets and config


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_values_in_the_rendered_output(overlay: str) -> None:
    docs = render(overlay)
    for d in docs:
        if d["kind"] == "Secret":
            assert not d.get("data") and not d.get("stringData"), f"Secret {d['metadata']['name']} ships values"
    for name in env_config(docs):
        assert not SECRET_NAME_RE.search(name), f"s2s-bridge-env must not hold secrets: {name}"
        assert name not in SECRET_KEYS

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in SECRET_FIELDS:
                    assert isinstance(v, str) and PLACEHOLDER.match(v), (
                        f"bridge.yaml {'.'.join((*path, k))}: only a ${{VAR}} placeholder (no default) is allowed"
                    )
                walk(v, (*path, str(k)))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*path, str(i)))

    raw = yaml.safe_load(bridge_yaml(docs))
    walk(raw, ())
    assert raw["kafka"]["security_protocol"] == "SASL_SSL"
    assert raw["kafka"]["sasl"]["password"] == "${KAFKA_PASSWORD}"
    assert raw["destinations"]["zeotap"]["write_key"] == "${ZEOTAP_WRITE_KEY}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_required_variable_is_provided(overlay: str) -> None:
    docs = render(overlay)
    required = {
        m.group(1) for v in _strings(yaml.safe_load(bridge_yaml(docs))) for m in ENV_REF.finditer(v) if m.group(2) is None
    }
    missing = required - set(env_config(docs)) - SECRET_KEYS
    assert not missing, f"bridge.yaml needs {sorted(missing)}: neither in s2s-bridge-env nor in {SECRET_NAME}"


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


IMAGE_SCHEMAS = "/app/avro_schemas/"  # where the image ships avro_schemas/ (deploy/Dockerfile)


def _load(docs: list[dict[str, Any]], tmp_path: Path, **pod_env: str) -> Any:
    # load_config reads each route's schema: the image's /app/avro_schemas is the repository's here
    cfg_file = tmp_path / "bridge.yaml"
    cfg_file.write_text(bridge_yaml(docs).replace(IMAGE_SCHEMAS, f"{ROOT}/avro_schemas/"), encoding="utf-8")
    env = dict(env_config(docs))
    env.update({"KAFKA_USERNAME": "s2s-bridge", "KAFKA_PASSWORD": "pw-not-real", "ZEOTAP_WRITE_KEY": "wk-not-real"})
    env.update(pod_env)
    return load_config(cfg_file, env=env)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_loads_with_load_config(overlay: str, tmp_path: Path) -> None:
    cfg = _load(render(overlay), tmp_path)
    assert cfg.kafka.security_protocol == "SASL_SSL"
    assert cfg.kafka.sasl is not None and cfg.kafka.sasl.password.get_secret_value() == "pw-not-real"
    assert cfg.destinations["zeotap"].write_key.get_secret_value() == "wk-not-real"
    assert cfg.destinations["zeotap"].url.startswith("https://")
    assert cfg.metrics.port == 9108
    assert not cfg.kafka.create_topics, "topics and their ACLs are created by the platform team"
    for name, route in yaml.safe_load(bridge_yaml(render(overlay)))["routes"].items():
        p = route["schema"]
        assert p.startswith(IMAGE_SCHEMAS), f"route {name}: schema must be under /app/avro_schemas (image)"
        assert cfg.schema_path(cfg.routes[name]).is_file(), f"route {name}: {p} is not in avro_schemas/"


def test_configmap_without_secrets_in_env_fails_to_load(tmp_path: Path) -> None:
    from streams.config import ConfigError

    docs = render("production")
    cfg_file = tmp_path / "bridge.yaml"
    cfg_file.write_text(bridge_yaml(docs), encoding="utf-8")
    with pytest.raises(ConfigError, match="KAFKA_USERNAME|KAFKA_PASSWORD|ZEOTAP_WRITE_KEY"):
        load_config(cfg_file, env=dict(env_config(docs)))


# --------------------------------------------------------------------------- tests: replay Job, image


def test_replay_job_template_is_valid(tmp_path: Path) -> None:
    text = (DEPLOY / "jobs" / "replay-job.yaml").read_text(encoding="utf-8")
    for ph in ("ROUTE", "NAMESPACE", "CONFIG_MAP", "ENV_CONFIG_MAP", "IMAGE"):
        assert ph in text, f"placeholder {ph} is documented"
    docs = render("production")
    filled = (
        text.replace("ENV_CONFIG_MAP", one(docs, "ConfigMap", "s2s-bridge-env")["metadata"]["name"])
        .replace("CONFIG_MAP", one(docs, "ConfigMap", "s2s-bridge-config")["metadata"]["name"])
        .replace("NAMESPACE", "s2s-bridge")
        .replace("IMAGE", "registry.example.com/data-platform/s2s-bridge:0.1.0")
        .replace("ROUTE", "purchase_completed")
    )
    job = yaml.safe_load(filled)
    assert job["kind"] == "Job" and job["metadata"]["generateName"]
    validate(job)
    pod = job["spec"]["template"]["spec"]
    _pod_policy(pod, "replay Job")
    (c,) = pod["containers"]
    assert c["args"][:5] == ["replay", "--config", "/etc/s2s-bridge/bridge.yaml", "--route", "purchase_completed"]
    assert pod["restartPolicy"] == "Never"
    assert "purchase_completed" in _load(docs, tmp_path).routes
    # the Job is not part of any kustomization (it is a one-off)
    for k in DEPLOY.rglob("kustomization.yaml"):
        assert "replay-job" not in k.read_text(encoding="utf-8")


def test_dockerfile_conventions() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I)
    assert len(stages) >= 2, "multi-stage build"
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", text, re.M)
    final = text[text.rindex("\nFROM ") :]
    assert "build-essential" not in final and "pip wheel" not in final, "no build tools in the final image"
    assert "COPY --from=builder /opt/venv /opt/venv" in final
    assert "COPY avro_schemas /app/avro_schemas" in final
    assert re.search(r"^USER 10001(:10001)?$", final, re.M)
    assert 'ENTRYPOINT ["s2s-bridge"]' in final
    assert 'CMD ["worker", "--config", "/etc/s2s-bridge/bridge.yaml"]' in final
    assert re.search(r"^STOPSIGNAL SIGTERM$", final, re.M) and re.search(r"^EXPOSE 9108$", final, re.M)
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").split()
    for needed in ("!pyproject.toml", "!README.md", "!streams/", "!avro_schemas/"):
        assert needed in ignore


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_static_membership_is_wired_to_the_pod_name(overlay: str, tmp_path: Path) -> None:
    docs = render(overlay)
    sts = one(docs, WORKLOAD)
    pod = sts["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e for e in c.get("env", [])}
    # the Downward API: each pod's own, stable name
    assert env.get("POD_NAME", {}).get("valueFrom") == {"fieldRef": {"fieldPath": "metadata.name"}}
    raw = yaml.safe_load(bridge_yaml(docs))
    ref = ENV_REF.fullmatch(raw["kafka"]["group_instance_id"])
    assert ref is not None and ref.group(1) == "POD_NAME"
    cfg = _load(docs, tmp_path, POD_NAME=f"{sts['metadata']['name']}-3")
    assert cfg.kafka.group_instance_id == f"{sts['metadata']['name']}-3"
    assert cfg.kafka.group_protocol == "classic"  # the session timeout below is the client's
    # a pod gone for good (a scale-down) leaves its partitions unowned for the session timeout: no
    # longer than a stop may take; and long enough for a killed container to be restarted (~5 s
    # measured, plus the kubelet's first restart back-off of 10 s)
    assert 15 <= cfg.kafka.session_timeout_s <= pod["terminationGracePeriodSeconds"]
    assert cfg.kafka.heartbeat_interval_s * 3 <= cfg.kafka.session_timeout_s
    # SIGTERM -> drain -> commit and close, before the SIGKILL (as for dynamic members)
    assert pod["terminationGracePeriodSeconds"] >= cfg.worker.shutdown_grace_s + 5
