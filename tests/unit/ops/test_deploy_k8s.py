"""deploy/k8s, checked offline (no cluster, no network):

- the kustomizations are rendered by `render` below: the subset of kustomize these manifests use
  (`resources` files and folders, `namespace`, `images`, `patches` with a strategic-merge patch file). No
  maintained Python kustomize exists (PyPI's `kustomize` writes kustomization files, `pykustomize` needs
  Python 3.14) and Debian's kubectl (1.20) embeds a 2019 kustomize; a kustomization using any other field
  fails `test_kustomizations_use_only_the_rendered_subset`. Where a kubectl with kustomize is installed,
  its rendering must equal ours (`test_render_agrees_with_kubectl_kustomize`);
- every built-in kind validates with kubernetes-validate against Kubernetes KUBERNETES_VERSION (strict:
  unknown fields are errors);
- the KEDA ScaledObject uses only the fields KEDA documents for a ScaledObject and its `redis` trigger;
- consistency with the code: commands are real `carepath` subcommands, probes real routes and health
  commands, every CAREPATH_* name a real setting, the KEDA lists the worker's real queues.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from carepath.cli import _parser
from carepath.health import PARTS
from shared.messaging.routing import QUEUES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
BASE = K8S / "base"
OVERLAY = K8S / "overlays" / "production"
KUBERNETES_VERSION = "1.33.0"  # the oldest Kubernetes these manifests are checked against (strict schemas)
PARTS_RUN = ("intake", "notifications", "worker", "relay", "scheduler")

# --- the kustomize subset ---------------------------------------------------------------------------

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
# Strategic-merge keys of the lists these manifests patch (Kubernetes' patchMergeKey); other lists are
# replaced, as strategic merge does for lists without a merge key (and for custom resources).
MERGE_KEYS = {"containers": "name", "env": "name", "volumes": "name", "volumeMounts": "mountPath", "ports": "name"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass", "StorageClass"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _merge(target: Any, patch: Any, key: str | None = None) -> Any:
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for name, value in patch.items():
            merged[name] = _merge(target[name], value, name) if name in target else copy.deepcopy(value)
        return merged
    if isinstance(target, list) and isinstance(patch, list) and key in MERGE_KEYS:
        field = MERGE_KEYS[key]
        merged_list = list(target)
        for item in patch:
            index = next((i for i, old in enumerate(merged_list) if old.get(field) == item.get(field)), None)
            if index is None:
                merged_list.append(copy.deepcopy(item))
            else:
                merged_list[index] = _merge(merged_list[index], item)
        return merged_list
    return copy.deepcopy(patch)


def _set_images(resource: dict[str, Any], images: list[dict[str, str]]) -> None:
    pod = resource.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        name = container["image"].rsplit(":", 1)[0]
        for image in images:
            if image["name"] == name:
                container["image"] = f"{image.get('newName', name)}:{image['newTag']}"


def render(folder: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        resources += render(path) if path.is_dir() else _documents(path)
    for patch_entry in kustomization.get("patches", []):
        for patch in _documents(folder / patch_entry["path"]):
            matches = [
                i
                for i, r in enumerate(resources)
                if (r["kind"], r["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
            ]
            assert len(matches) == 1, f"patch {patch_entry['path']} matches {len(matches)} resources"
            resources[matches[0]] = _merge(resources[matches[0]], patch)
    for resource in resources:
        _set_images(resource, kustomization.get("images", []))
        if "namespace" in kustomization and resource["kind"] not in CLUSTER_SCOPED:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


RENDERED = {"base": render(BASE), "production": render(OVERLAY)}
BUILT_IN = [(name, r) for name, rendered in RENDERED.items() for r in rendered if r["apiVersion"] != "keda.sh/v1alpha1"]


def _id(item: tuple[str, dict[str, Any]]) -> str:
    name, resource = item
    return f"{name}:{resource['kind']}/{resource['metadata']['name']}"


def _of_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("folder", [BASE, OVERLAY], ids=["base", "production"])
def test_kustomizations_use_only_the_rendered_subset(folder: Path) -> None:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization) <= SUPPORTED, set(kustomization) - SUPPORTED
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"path"}, "patches are strategic-merge files naming their target"


def _canonical(resources: list[dict[str, Any]]) -> list[str]:
    def sort_lists(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: sort_lists(v) for k, v in value.items()}
        if isinstance(value, list):
            items = [sort_lists(v) for v in value]
            return (
                sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
                if all(isinstance(v, dict) and "name" in v for v in items)
                else items
            )
        return value

    def normalise(value: Any) -> Any:  # kubectl prints quoted numbers and booleans as YAML scalars
        return yaml.safe_load(yaml.safe_dump(value))

    return sorted(json.dumps(sort_lists(normalise(r)), sort_keys=True) for r in resources)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl on this machine to compare with")
@pytest.mark.parametrize("folder", [BASE, OVERLAY], ids=["base", "production"])
def test_render_agrees_with_kubectl_kustomize(folder: Path) -> None:
    done = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, check=False)
    if done.returncode != 0 and "unknown command" in done.stderr:
        pytest.skip("this kubectl has no kustomize")
    assert done.returncode == 0, done.stderr
    assert _canonical(list(yaml.safe_load_all(done.stdout))) == _canonical(render(folder))


@pytest.mark.parametrize("item", BUILT_IN, ids=[_id(i) for i in BUILT_IN])
def test_built_in_kinds_validate_against_the_kubernetes_schema(item: tuple[str, dict[str, Any]]) -> None:
    _, resource = item
    kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_an_unknown_field() -> None:
    """The strict schemas do find mistakes: a misspelt probe field is an error."""
    deployment = copy.deepcopy(_of_kind(RENDERED["base"], "Deployment")["carepath-worker"])
    _container(deployment)["livenessProbe"]["periodSecond"] = 15
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_every_part_is_deployed_from_one_image_with_its_carepath_command() -> None:
    for rendered in RENDERED.values():
        deployments = _of_kind(rendered, "Deployment")
        assert set(deployments) == {f"carepath-{part}" for part in PARTS_RUN}
        images = {_container(d)["image"] for d in deployments.values()}
        images |= {j["spec"]["template"]["spec"]["containers"][0]["image"] for j in _of_kind(rendered, "Job").values()}
        assert len(images) == 1, images
        for part in PARTS_RUN:
            command = _container(deployments[f"carepath-{part}"])["command"]
            assert command == ["carepath", part]
            _parser().parse_args(command[1:])
        (job,) = _of_kind(rendered, "Job").values()
        assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["carepath", "migrate"]
    assert next(iter(images)).startswith("registry.example.com/carepath:")  # the overlay's image


def _route_paths() -> set[str]:
    from carepath.apps import create_intake_app, create_notifications_app

    apps = (create_intake_app(), create_notifications_app())
    return {path for app in apps for route in app.routes if isinstance(path := getattr(route, "path", None), str)}


def test_probes_point_at_real_routes_and_health_commands(settings: Settings) -> None:
    routes = _route_paths()
    deployments = _of_kind(RENDERED["production"], "Deployment")
    for part in PARTS_RUN:
        container = _container(deployments[f"carepath-{part}"])
        assert {"livenessProbe", "startupProbe"} <= set(container)
        if part in ("intake", "notifications"):
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                assert container[probe]["httpGet"]["path"] in routes
                assert container[probe]["httpGet"]["port"] in {p["name"] for p in container["ports"]}
            port = int(next(e["value"] for e in container["env"] if e["name"].endswith("_PORT")))
            assert container["ports"][0]["containerPort"] == port
        else:  # liveness of a loop: `carepath health <part>` (fails when a loop is stuck)
            for probe in ("livenessProbe", "startupProbe"):
                command = container[probe]["exec"]["command"]
                assert command == ["carepath", "health", part]
                assert part in PARTS
                _parser().parse_args(command[1:])


def test_every_carepath_variable_is_a_real_setting() -> None:
    known = {f"CAREPATH_{field.upper()}" for field in Settings.model_fields}
    for rendered in RENDERED.values():
        used: set[str] = set()
        for config in _of_kind(rendered, "ConfigMap").values():
            used |= set(config["data"])
        for workload in [*_of_kind(rendered, "Deployment").values(), *_of_kind(rendered, "Job").values()]:
            container = workload["spec"]["template"]["spec"]["containers"][0]
            used |= {e["name"] for e in container.get("env", [])}
            for env in container.get("env", []):
                if "valueFrom" in env:  # a secret key carries the setting's own name
                    assert env["valueFrom"]["secretKeyRef"]["key"] == env["name"]
            assert [s["configMapRef"]["name"] for s in container["envFrom"]] == ["carepath-config"]
        assert used <= known, used - known
        assert {"CAREPATH_ENV", "CAREPATH_SECRET_KEY", "CAREPATH_DATABASE_URL", "CAREPATH_BROKER_URL"} <= used


def test_no_secret_is_committed() -> None:
    for rendered in RENDERED.values():
        assert not _of_kind(rendered, "Secret")
        for config in _of_kind(rendered, "ConfigMap").values():
            assert not {"CAREPATH_SECRET_KEY", "CAREPATH_DATABASE_URL", "CAREPATH_TOKEN_SIGNING_KEY"} & set(
                config["data"]
            )


def test_every_pod_has_resources_and_runs_unprivileged() -> None:
    rendered = RENDERED["production"]
    for workload in [*_of_kind(rendered, "Deployment").values(), *_of_kind(rendered, "Job").values()]:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        # the heartbeats `carepath health` reads live in /app/var: writable on a read-only root
        assert "/app/var" in {m["mountPath"] for m in container["volumeMounts"]}


def test_disruption_budgets_cover_every_long_running_part() -> None:
    rendered = RENDERED["production"]
    budgets = _of_kind(rendered, "PodDisruptionBudget")
    deployments = _of_kind(rendered, "Deployment")
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert deployment["spec"]["template"]["metadata"]["labels"] == selector
        assert budgets[name]["spec"]["selector"]["matchLabels"] == selector


def test_intake_scales_by_hpa_and_services_select_their_pods() -> None:
    rendered = RENDERED["production"]
    (hpa,) = _of_kind(rendered, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "carepath-intake"}
    deployments = _of_kind(rendered, "Deployment")
    assert "replicas" not in deployments["carepath-intake"]["spec"], "the HPA owns the intake's replicas"
    assert "replicas" not in deployments["carepath-worker"]["spec"], "KEDA owns the worker's replicas"
    services = _of_kind(rendered, "Service")
    assert set(services) == {"carepath-intake", "carepath-notifications"}
    for name, service in services.items():
        assert service["spec"]["selector"] == deployments[name]["spec"]["selector"]["matchLabels"]


def test_network_policies_deny_by_default_and_open_only_the_needed_flows() -> None:
    policies = _of_kind(RENDERED["production"], "NetworkPolicy")
    deny = policies["carepath-default-deny"]["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny

    def egress_ports(name: str) -> set[int]:
        return {p["port"] for rule in policies[name]["spec"]["egress"] for p in rule["ports"]}

    assert {53, 5432, 6379} <= egress_ports("carepath-egress-dns-database-broker")
    webhooks = policies["carepath-egress-webhooks-email"]["spec"]
    assert webhooks["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "scheduler"
    assert {443, 587} <= egress_ports("carepath-egress-webhooks-email")
    http = policies["carepath-ingress-http"]["spec"]
    assert {p["port"] for rule in http["ingress"] for p in rule["ports"]} == {8000, 8001}


# --- KEDA ------------------------------------------------------------------------------------------
# The fields KEDA documents for a ScaledObject (https://keda.sh/docs/2.15/reference/scaledobject-spec/)
# and for its `redis` (Redis Lists) trigger (https://keda.sh/docs/2.15/scalers/redis-lists/).
SCALED_OBJECT_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
SCALE_TARGET_REF = {"apiVersion", "kind", "name", "envSourceContainerName"}
ADVANCED = {"restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"}
HPA_CONFIG = {"name", "behavior"}
TRIGGER = {"type", "metadata", "name", "useCachedMetrics", "authenticationRef", "metricType"}
REDIS_METADATA = {
    "address",
    "host",
    "port",
    "usernameFromEnv",
    "passwordFromEnv",
    "listName",
    "listLength",
    "activationListLength",
    "enableTLS",
    "unsafeSsl",
    "databaseIndex",
    "addressFromEnv",
    "hostFromEnv",
    "portFromEnv",
}
REDIS_REQUIRED = {"listName", "listLength"}


def _scaled_objects() -> list[dict[str, Any]]:
    return [r for rendered in RENDERED.values() for r in rendered if r["kind"] == "ScaledObject"]


def test_the_scaled_object_uses_only_fields_keda_documents() -> None:
    assert len(_scaled_objects()) == 2  # base and overlay
    for scaled in _scaled_objects():
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        spec = scaled["spec"]
        assert set(spec) <= SCALED_OBJECT_SPEC, set(spec) - SCALED_OBJECT_SPEC
        assert set(spec["scaleTargetRef"]) <= SCALE_TARGET_REF and "name" in spec["scaleTargetRef"]
        assert set(spec.get("advanced", {})) <= ADVANCED
        assert set(spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {})) <= HPA_CONFIG
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            assert set(trigger) <= TRIGGER and trigger["type"] == "redis"
            metadata = trigger["metadata"]
            assert set(metadata) <= REDIS_METADATA, set(metadata) - REDIS_METADATA
            assert set(metadata) >= REDIS_REQUIRED
            assert {"address", "addressFromEnv"} & set(metadata) or {"host", "port"} <= set(metadata)
            assert all(isinstance(value, str) for value in metadata.values()), "KEDA metadata values are strings"
            assert int(metadata["listLength"]) > 0 and int(metadata.get("activationListLength", "0")) >= 0


def test_keda_scales_the_worker_on_every_queue_it_consumes() -> None:
    for rendered in RENDERED.values():
        (scaled,) = _of_kind(rendered, "ScaledObject").values()
        target = scaled["spec"]["scaleTargetRef"]["name"]
        worker = _of_kind(rendered, "Deployment")[target]
        assert _container(worker)["command"] == ["carepath", "worker"]  # no --queues: all of QUEUES
        assert {t["metadata"]["listName"] for t in scaled["spec"]["triggers"]} == set(QUEUES)
