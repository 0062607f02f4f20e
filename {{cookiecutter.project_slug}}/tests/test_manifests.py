"""The Kubernetes manifests as kustomize renders them, validated offline against the Kubernetes schemas.

``pytest -m manifests`` (needs ``.[manifests]`` and ``kustomize`` or ``kubectl`` on PATH) renders
``k8s/`` the way ``kubectl apply -k k8s/`` does and checks every resource against the Kubernetes
1.30 schemas in strict mode (an unknown field is an error). The negative control, a Deployment with
a misspelled field, must fail the same check. Without the tools the test skips saying which (with
``CI`` set it fails instead); a project baked without Kubernetes has no ``k8s/`` and skips.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from typing import Any, NoReturn

import pytest
import yaml

from {{ cookiecutter.package_name }}_devtools.serving import project_root

pytestmark = pytest.mark.manifests
KUBERNETES_VERSION = "1.30.0"
#: API groups of custom resources (Gateway API, Prometheus Operator): not in Kubernetes' own schemas.
#: The template's tests validate them against their CRD schemas; here they are only counted.
CUSTOM_GROUPS = ("gateway.networking.k8s.io/", "monitoring.coreos.com/")
K8S = project_root() / "k8s"


def unavailable(problem: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(problem, pytrace=False)
    pytest.skip(problem)


def kustomize_build() -> list[dict[str, Any]]:
    """The resources ``kubectl apply -k k8s/`` would send."""
    if shutil.which("kustomize"):
        command = ["kustomize", "build", str(K8S)]
    elif shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(K8S)]
    else:
        unavailable("neither kustomize nor kubectl is on PATH")
    rendered = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    return [document for document in yaml.safe_load_all(rendered) if document]


def schema_problems(document: dict[str, Any]) -> list[str]:
    import kubernetes_validate

    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{document.get('kind')} {document['metadata'].get('name')}: {error.message}"]
    return []


def test_the_rendered_manifests_are_valid_kubernetes() -> None:
    if not K8S.is_dir():
        pytest.skip("this project has no k8s/")
    try:
        import kubernetes_validate  # noqa: F401
    except ImportError:
        unavailable("kubernetes-validate is not installed (pip install -e '.[manifests]')")
    documents = kustomize_build()
    kinds = {document["kind"] for document in documents}
    assert {"ConfigMap", "Deployment", "Service"} <= kinds, kinds
    builtin = [document for document in documents if not document["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert [problem for document in builtin for problem in schema_problems(document)] == []
    # Control: the same check refuses a Deployment with a field Kubernetes does not have.
    deployment = next(document for document in documents if document["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["memoryLimit"] = "1Gi"
    assert schema_problems(broken), "strict validation accepted an unknown field"
