"""deploy/kubernetes/edge-sidecar.yaml against Kubernetes's own JSON schemas (no cluster here),
its sidecar semantics, and the Kubernetes scrape config's relabelling run on the manifest's pod.

A fleet on Redis: edge-learner.yaml (the learner, two replicas) and redis.yaml (a Redis to try it with),
validated the same way, and how a sidecar and the learner reach Redis."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from _deploy import LEARNER_MANIFEST, MANIFEST, PROMETHEUS_DIR, REDIS_MANIFEST, ROOT, load_yaml

#: The oldest and newest Kubernetes minor versions the manifest is checked against.
KUBERNETES_VERSIONS = ["1.29.0", "1.33.0"]


def _docs(path: Path = MANIFEST) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def _kind(kind: str, path: Path = MANIFEST) -> dict:
    (doc,) = [d for d in _docs(path) if d["kind"] == kind]
    return doc


def _containers() -> dict[str, dict]:
    return {c["name"]: c for c in _kind("Deployment")["spec"]["template"]["spec"]["containers"]}


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container["env"]}


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    "doc", [d for path in (MANIFEST, LEARNER_MANIFEST, REDIS_MANIFEST) for d in _docs(path)], ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_manifest_validates_against_the_kubernetes_schema(doc: dict, version: str) -> None:
    # strict: unknown fields (a typo such as "readinesProbe") are errors too.
    kubernetes_validate.validate(doc, version, strict=True)


def test_manifest_holds_deployment_service_configmap_secret() -> None:
    assert sorted(d["kind"] for d in _docs()) == ["ConfigMap", "Deployment", "NetworkPolicy", "Secret", "Service"]


def test_network_policy_opens_the_public_port_to_all_and_the_admin_port_to_prometheus_only() -> None:
    ingress = _kind("NetworkPolicy")["spec"]["ingress"]
    public = [rule for rule in ingress if [p["port"] for p in rule["ports"]] == ["edge-http"]]
    admin = [rule for rule in ingress if [p["port"] for p in rule["ports"]] == ["edge-admin"]]
    assert len(public) == 1 and "from" not in public[0]
    assert len(admin) == 1 and admin[0]["from"]
    assert len(ingress) == 2  # nothing else: the storefront's port is for edge, inside the pod


def test_storefront_and_edge_share_the_pod_and_edge_proxies_to_localhost() -> None:
    containers = _containers()
    assert set(containers) == {"storefront", "edge"}
    storefront_port = containers["storefront"]["ports"][0]["containerPort"]
    assert _env(containers["edge"])["EDGE_UPSTREAM"]["value"] == f"http://127.0.0.1:{storefront_port}"


def _ports(container: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def test_probes_hit_the_admin_port() -> None:
    edge = _containers()["edge"]
    env, ports = _env(edge), _ports(edge)
    assert ports["edge-admin"] == int(env["EDGE_ADMIN_PORT"]["value"])
    assert ports["edge-http"] == int(env["EDGE_PORT"]["value"])
    assert edge["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "edge-admin"}
    assert edge["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "edge-admin"}


def test_service_targets_the_public_port_only() -> None:
    service = _kind("Service")
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["edge-http"]
    pod_labels = _kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


def test_resources_requests_and_limits() -> None:
    for name, container in _containers().items():
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys(), name
        assert "memory" in container["resources"]["limits"], name


def test_policy_from_the_configmap_is_a_valid_policy(tmp_path) -> None:  # noqa: ANN001
    from edge import load_policy

    edge = _containers()["edge"]
    policy_path = _env(edge)["EDGE_POLICY"]["value"]
    (mount,) = [m for m in edge["volumeMounts"] if policy_path.startswith(m["mountPath"] + "/")]
    (volume,) = [v for v in _kind("Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    configmap = _kind("ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    key = policy_path.rsplit("/", 1)[1]
    (tmp_path / key).write_text(configmap["data"][key], encoding="utf-8")
    load_policy(tmp_path / key)  # raises PolicyError, naming the key, if the ConfigMap's policy is invalid


def test_feedback_key_comes_from_the_secret() -> None:
    ref = _env(_containers()["edge"])["EDGE_FEEDBACK_KEY"]["valueFrom"]["secretKeyRef"]
    secret = _kind("Secret")
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]


def test_checkpoint_lives_on_a_writable_volume() -> None:
    edge = _containers()["edge"]
    checkpoint = _env(edge)["EDGE_CHECKPOINT"]["value"]
    (mount,) = [m for m in edge["volumeMounts"] if checkpoint.startswith(m["mountPath"] + "/")]
    assert not mount.get("readOnly")
    (volume,) = [v for v in _kind("Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume  # see the comment in the manifest and docs/operations.md for why not a PVC


def _prestop_sleep(container: dict) -> int:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    return int(command[1])


def test_termination_grace_outlasts_prestop_and_edge_drain() -> None:
    from edge.core.settings import Settings

    spec = _kind("Deployment")["spec"]["template"]["spec"]
    containers = _containers()
    configured = _env(containers["edge"]).get("EDGE_GRACEFUL_TIMEOUT")
    drain_s = float(configured["value"]) if configured else Settings().graceful_timeout
    edge_done = _prestop_sleep(containers["edge"]) + drain_s
    assert spec["terminationGracePeriodSeconds"] > edge_done
    # The storefront outlives edge's drain, or in-flight proxied requests would lose their upstream.
    read_timeout = float(_env(containers["edge"])["EDGE_READ_TIMEOUT"]["value"])
    assert _prestop_sleep(containers["storefront"]) >= _prestop_sleep(containers["edge"]) + read_timeout
    assert spec["terminationGracePeriodSeconds"] > _prestop_sleep(containers["storefront"])


def test_containers_run_as_non_root_without_privileges() -> None:
    spec = _kind("Deployment")["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    for name, container in _containers().items():
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True, name


# ---- The Kubernetes scrape config's relabelling, run on this manifest's pod ----------------------


def _relabel(labels: dict[str, str], configs: list[dict]) -> dict[str, str] | None:
    """Prometheus's relabelling (keep, drop, replace), enough of it for our config. None: dropped."""
    labels = dict(labels)
    for config in configs:
        action = config.get("action", "replace")
        value = config.get("separator", ";").join(labels.get(name, "") for name in config.get("source_labels", []))
        match = re.fullmatch(config.get("regex", "(.*)"), value)
        if action == "keep" and not match:
            return None
        if action == "drop" and match:
            return None
        if action == "replace" and match:
            replacement = re.sub(r"\$(\d+)", r"\\g<\1>", config.get("replacement", "$1"))
            result = match.expand(replacement)
            if result:
                labels[config["target_label"]] = result
            else:
                labels.pop(config["target_label"], None)
    return labels


def _pod_targets(annotations: dict[str, str], labels: dict[str, str], ports: list[int], phase: str = "Running") -> list[dict[str, str]]:
    """The discovery labels Prometheus's pod role gives: one target per container port."""
    meta = {
        "__meta_kubernetes_namespace": "shop",
        "__meta_kubernetes_pod_name": "storefront-7d9c-abcde",
        "__meta_kubernetes_pod_node_name": "node-1",
        "__meta_kubernetes_pod_phase": phase,
        **{f"__meta_kubernetes_pod_annotation_{re.sub(r'[^a-zA-Z0-9_]', '_', k)}": v for k, v in annotations.items()},
        **{f"__meta_kubernetes_pod_label_{re.sub(r'[^a-zA-Z0-9_]', '_', k)}": v for k, v in labels.items()},
    }
    return [{**meta, "__address__": f"pod.invalid:{port}", "__metrics_path__": "/metrics", "job": "edge"} for port in ports]


def _scrape_targets(targets: list[dict[str, str]], job_name: str = "edge") -> list[dict[str, str]]:
    (job,) = [j for j in load_yaml(PROMETHEUS_DIR / "prometheus-kubernetes.yml")["scrape_configs"] if j["job_name"] == job_name]
    kept = [_relabel(t, job["relabel_configs"]) for t in targets]
    unique = {tuple(sorted((k, v) for k, v in t.items() if not k.startswith("__meta_"))) for t in kept if t is not None}
    return [dict(t) for t in unique]  # Prometheus merges targets left identical by relabelling


def test_kubernetes_discovery_scrapes_the_sidecars_admin_port_once_per_pod() -> None:
    template = _kind("Deployment")["spec"]["template"]
    ports = [p["containerPort"] for c in template["spec"]["containers"] for p in c["ports"]]
    (target,) = _scrape_targets(_pod_targets(template["metadata"]["annotations"], template["metadata"]["labels"], ports))
    admin_port = _ports(_containers()["edge"])["edge-admin"]
    assert target["__address__"] == f"pod.invalid:{admin_port}"
    assert target["__metrics_path__"] == "/metrics"
    assert (target["namespace"], target["pod"], target["node"]) == ("shop", "storefront-7d9c-abcde", "node-1")


def test_kubernetes_discovery_skips_unannotated_other_and_pending_pods() -> None:
    template = _kind("Deployment")["spec"]["template"]
    annotations, labels = template["metadata"]["annotations"], template["metadata"]["labels"]
    assert _scrape_targets(_pod_targets({}, labels, [9090])) == []
    assert _scrape_targets(_pod_targets(annotations, {"app.kubernetes.io/name": "other"}, [9090])) == []
    assert _scrape_targets(_pod_targets(annotations, labels, [9090], phase="Pending")) == []


def test_dockerfile_and_manifest_agree_on_ports() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text(encoding="utf-8")
    ports = _ports(_containers()["edge"])
    assert f"EXPOSE {ports['edge-http']} {ports['edge-admin']}" in dockerfile



# ---- A fleet on Redis: the learner, the Secret "edge-state", a Redis to try it with -------------------------


def _learner() -> dict:
    (container,) = _kind("Deployment", LEARNER_MANIFEST)["spec"]["template"]["spec"]["containers"]
    return container


def _secret_ref(container: dict, name: str) -> dict:
    return _env(container)[name]["valueFrom"]["secretKeyRef"]


def test_learner_manifest_holds_deployment_pdb_network_policy_and_the_state_secret() -> None:
    assert sorted(d["kind"] for d in _docs(LEARNER_MANIFEST)) == ["Deployment", "NetworkPolicy", "PodDisruptionBudget", "Secret"]
    assert sorted(d["kind"] for d in _docs(REDIS_MANIFEST)) == ["Deployment", "NetworkPolicy", "Service"]


def test_sidecar_reaches_redis_from_the_state_secret_and_still_runs_without_it() -> None:
    ref = _secret_ref(_containers()["edge"], "EDGE_STATE")
    secret = _kind("Secret", LEARNER_MANIFEST)
    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    # optional: a cluster without the fleet's Secret starts sidecars that learn alone, instead of pods stuck in
    # CreateContainerConfigError.
    assert ref["optional"] is True


def test_learner_runs_edge_learner_with_the_sidecars_state_prefix_and_feedback_key() -> None:
    learner, edge = _learner(), _containers()["edge"]
    assert learner["command"] == ["edge", "learner"]
    assert learner["image"] == edge["image"]  # one image, another command
    state = _secret_ref(learner, "EDGE_STATE")
    assert (state["name"], state["key"]) == (_secret_ref(edge, "EDGE_STATE")["name"], _secret_ref(edge, "EDGE_STATE")["key"])
    assert not state.get("optional")  # a learner without Redis has nothing to do
    assert _env(learner)["EDGE_STATE_PREFIX"]["value"] == _env(edge)["EDGE_STATE_PREFIX"]["value"]
    # Snapshots are signed with the feedback key: the learner's must be the sidecars' own.
    assert _secret_ref(learner, "EDGE_FEEDBACK_KEY") == _secret_ref(edge, "EDGE_FEEDBACK_KEY")


def test_learner_runs_two_replicas_spread_and_kept_through_drains() -> None:
    deployment = _kind("Deployment", LEARNER_MANIFEST)
    assert deployment["spec"]["replicas"] >= 2  # a standby takes the lock within ~5 s of the leader's death
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pdb = _kind("PodDisruptionBudget", LEARNER_MANIFEST)
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()


def test_learner_admin_port_is_probed_annotated_and_open_to_prometheus_only() -> None:
    learner = _learner()
    env, ports = _env(learner), _ports(learner)
    template = _kind("Deployment", LEARNER_MANIFEST)["spec"]["template"]
    # The image sets EDGE_ADMIN_PORT=9090 (a sidecar's): the learner's must be set explicitly.
    assert ports["learner-admin"] == int(env["EDGE_ADMIN_PORT"]["value"]) == int(template["metadata"]["annotations"]["prometheus.io/port"])
    assert env["EDGE_ADMIN_HOST"]["value"] == "0.0.0.0"
    assert learner["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "learner-admin"}
    assert learner["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "learner-admin"}
    (rule,) = _kind("NetworkPolicy", LEARNER_MANIFEST)["spec"]["ingress"]
    assert [p["port"] for p in rule["ports"]] == ["learner-admin"] and rule["from"]
    context = learner["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
    assert {"cpu", "memory"} <= learner["resources"]["requests"].keys() and "memory" in learner["resources"]["limits"]
    checkpoint = env["EDGE_CHECKPOINT"]["value"]
    assert any(checkpoint.startswith(m["mountPath"] + "/") and not m.get("readOnly") for m in learner["volumeMounts"])


def test_learner_pods_are_not_storefront_pods() -> None:
    """The storefront's Service, Deployment and NetworkPolicy select by name=storefront: never a learner."""
    labels = _kind("Deployment", LEARNER_MANIFEST)["spec"]["template"]["metadata"]["labels"]
    for selector in (
        _kind("Service")["spec"]["selector"],
        _kind("Deployment")["spec"]["selector"]["matchLabels"],
        _kind("NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
    ):
        assert not selector.items() <= labels.items(), selector


def test_kubernetes_discovery_scrapes_learners_as_their_own_job() -> None:
    learner_template = _kind("Deployment", LEARNER_MANIFEST)["spec"]["template"]
    annotations, labels = learner_template["metadata"]["annotations"], learner_template["metadata"]["labels"]
    (target,) = _scrape_targets(_pod_targets(annotations, labels, [9102]), "edge-learner")
    assert target["__address__"] == f"pod.invalid:{_ports(_learner())['learner-admin']}"
    assert target["namespace"] == "shop"
    assert _scrape_targets(_pod_targets(annotations, labels, [9102]), "edge") == []  # not a sidecar
    sidecar = _kind("Deployment")["spec"]["template"]["metadata"]
    assert _scrape_targets(_pod_targets(sidecar["annotations"], sidecar["labels"], [9090]), "edge-learner") == []


def test_state_secret_points_at_the_trial_redis_with_its_password() -> None:
    secret = _kind("Secret", LEARNER_MANIFEST)["stringData"]
    url = urlsplit(secret["url"])
    assert url.scheme in ("redis", "rediss")
    assert url.password == secret["password"]
    service = _kind("Service", REDIS_MANIFEST)
    assert (url.hostname, url.port) == (service["metadata"]["name"], service["spec"]["ports"][0]["port"])
    assert re.fullmatch(r"/\d+", url.path)  # a db number


def test_trial_redis_takes_the_password_refuses_to_evict_and_stays_below_its_limit() -> None:
    deployment = _kind("Deployment", REDIS_MANIFEST)
    (redis,) = deployment["spec"]["template"]["spec"]["containers"]
    args = redis["args"]
    option = {args[i]: args[i + 1] for i in range(0, len(args), 2)}
    assert option["--requirepass"] == "$(REDIS_PASSWORD)"
    ref = _secret_ref(redis, "REDIS_PASSWORD")
    assert (ref["name"], ref["key"]) == (_kind("Secret", LEARNER_MANIFEST)["metadata"]["name"], "password")
    # Evicting would drop replay-guard nonces, the stream or the model without a word: refuse writes instead.
    assert option["--maxmemory-policy"] == "noeviction"
    maxmemory = int(option["--maxmemory"].removesuffix("mb")) * 2**20
    limit = redis["resources"]["limits"]["memory"]
    assert limit.endswith("Mi") and maxmemory < int(limit.removesuffix("Mi")) * 2**20
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"
    service = _kind("Service", REDIS_MANIFEST)
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_only_sidecars_and_learners_reach_redis() -> None:
    (rule,) = _kind("NetworkPolicy", REDIS_MANIFEST)["spec"]["ingress"]
    (peer,) = rule["from"]
    (expression,) = peer["podSelector"]["matchExpressions"]
    sidecar = _kind("Deployment")["spec"]["template"]["metadata"]["labels"]
    learner = _kind("Deployment", LEARNER_MANIFEST)["spec"]["template"]["metadata"]["labels"]
    assert expression["operator"] == "In" and expression["key"] == "app.kubernetes.io/component"
    assert set(expression["values"]) == {sidecar[expression["key"]], learner[expression["key"]]}
