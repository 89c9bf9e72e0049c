"""deploy/k8s: the Kustomize base and its gpu overlay render (a small renderer for the features
they use, checked against `kubectl kustomize` where kubectl is installed), every built-in kind
validates against the Kubernetes schemas (kubernetes-validate, strict), and the GPU pod asks for
exactly what it limits itself to."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CUSTOM_KINDS = {"ServiceMonitor"}  # Prometheus Operator's CRD: no schema in kubernetes-validate


def render(folder: Path) -> list[dict[str, Any]]:
    """resources (files and folders), labels with includeSelectors, JSON 6902 patches (add, replace)."""
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    documents: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = (folder / entry).resolve()
        documents += render(path) if path.is_dir() else list(yaml.safe_load_all(path.read_text()))
    for label in kustomization.get("labels", []):
        for document in documents:
            _label(document, label["pairs"], label.get("includeSelectors", False))
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        for document in documents:
            if document["kind"] == target["kind"] and document["metadata"]["name"] == target["name"]:
                for operation in yaml.safe_load(patch["patch"]):
                    _apply(document, operation)
    return documents


def _label(document: dict[str, Any], pairs: dict[str, str], selectors: bool) -> None:
    document["metadata"].setdefault("labels", {}).update(pairs)
    if not selectors:
        return
    spec = document.get("spec", {})
    kind = document["kind"]
    if kind in ("StatefulSet", "PodDisruptionBudget"):
        spec["selector"].setdefault("matchLabels", {}).update(pairs)
    if kind == "StatefulSet":
        spec["template"]["metadata"].setdefault("labels", {}).update(pairs)
        for claim in spec.get("volumeClaimTemplates", []):
            claim["metadata"].setdefault("labels", {}).update(pairs)
    if kind == "Service":
        spec.setdefault("selector", {}).update(pairs)


def _apply(document: dict[str, Any], operation: dict[str, Any]) -> None:
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
    node: Any = document
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    assert operation["op"] in ("add", "replace"), operation
    if isinstance(node, list):
        node[int(last)] = operation["value"]
    else:
        node[last] = copy.deepcopy(operation["value"])


def by_kind(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in documents}


@pytest.mark.parametrize("folder", ["base", "overlays/gpu"])
def test_manifests_render_and_validate(folder: str) -> None:
    documents = render(K8S / folder)
    assert {d["kind"] for d in documents} == {
        "StatefulSet",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
    }
    for document in documents:
        if document["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(document, "1.33.0", strict=True)  # raises on any problem
    kubectl = shutil.which("kubectl")
    if kubectl is not None:  # the real renderer agrees with this one
        result = subprocess.run([kubectl, "kustomize", str(K8S / folder)], capture_output=True, text=True,
                                timeout=60, check=True)  # fmt: skip
        rendered = list(yaml.safe_load_all(result.stdout))
        key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
        assert sorted(rendered, key=key) == sorted(documents, key=key)


def test_the_gpu_pod_requests_what_it_limits_and_is_probed() -> None:
    kinds = by_kind(render(K8S / "overlays" / "gpu"))
    pod = kinds["StatefulSet"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "altlas:gpu"
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == "1"
    for resource in ("cpu", "memory"):
        assert resource in resources["requests"] and resource in resources["limits"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    claims = [c["metadata"]["name"] for c in kinds["StatefulSet"]["spec"]["volumeClaimTemplates"]]
    assert [m["name"] for m in container["volumeMounts"]] == claims == ["data"]  # a volume per replica
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"]["kind"] == "StatefulSet"
    assert hpa["scaleTargetRef"]["name"] == kinds["StatefulSet"]["metadata"]["name"]
    assert hpa["metrics"][0]["pods"]["metric"]["name"] == "altlas_model_queue_depth"
    base = by_kind(render(K8S / "base"))["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in base["resources"]["limits"]  # the base needs no GPU
