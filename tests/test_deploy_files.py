"""Deployment files of baked projects: lint-clean, schema-valid, and true to the production policy.

For the default answers and every combination of signed sessions, Kubernetes and nginx (with
Python 3.10 and 3.13, both edges and both logins spread over them): ``hadolint`` reports nothing
on the Dockerfile, every Kubernetes manifest validates offline in strict mode (unknown fields are
errors): built-in kinds against the 1.30 schemas (``kubernetes-validate``), the Gateway API and
Prometheus Operator kinds against their CRD schemas shipped in ``tests/crd_schemas/`` (versions
noted there); the kustomization lists exactly the manifests, and ``manifest_policy_problems``
finds nothing. The policy is the point of this file: probes never touch the app (every GET of it
creates a session), memory is reserved as it is enforced, origins are explicit, timeouts agree
with the image, the pod has time to drain, the edge keeps a page and its websocket on one pod
over TLS with websocket-friendly timeouts, ``/metrics`` is not reachable through the edge, the
server trusts the proxy's X-Forwarded-* headers, and no manifest holds a secret. Negative controls
show that each policy rule, hadolint and the validators do fail on a broken input. Nothing here
needs the project installed; the rendered project's own ``tests/test_deploy.py`` runs the
Dockerfile command and nginx for real.
"""

from __future__ import annotations

import base64
import copy
import functools
import itertools
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import rendered_checks
import yaml
from rendered_checks import quantity_bytes

KUBERNETES_VERSION = "1.30.0"
#: Bokeh's default ``--keep-alive`` ping interval: proxy idle timeouts must be longer.
KEEP_ALIVE_S = 37.0
#: What ``drain_seconds`` is when no manifest sets it (settings.py default).
DEFAULT_DRAIN_S = 10.0
#: Kubernetes' default terminationGracePeriodSeconds.
DEFAULT_GRACE_S = 30.0
PROBE_PATHS = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet"})
#: (answer key, serve flag, settings field) of the idle-session timeouts.
TIMEOUTS = (
    ("unused_session_lifetime_ms", "--unused-session-lifetime", "UNUSED_SESSION_LIFETIME_MS"),
    ("check_unused_sessions_ms", "--check-unused-sessions", "CHECK_UNUSED_SESSIONS_MS"),
)
K8S_FILES = {"configmap.yaml", "deployment.yaml", "service.yaml", "pdb.yaml", "hpa.yaml"}
EDGE_FILES = {"gateway": {"gateway.yaml", "httproute.yaml"}, "ingress-nginx": {"ingress.yaml"}}
#: Gateway API and Prometheus Operator kinds, validated against ``tests/crd_schemas/<kind>-v1.json``.
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"
CRD_KINDS = {
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
#: HTTPRoute request timeouts that leave websockets alone: "0s" disables it (GEP-1742).
WEBSOCKET_SAFE_S = 3600.0
_DURATION = re.compile(r"([0-9]+)(h|m|s|ms)")

FLAGS = ("signed_sessions", "include_kubernetes", "include_nginx")


def with_edge_and_login(options: dict[str, Any]) -> dict[str, Any]:
    """Spread the other answers over the matrix: the Gateway with Python 3.13, ingress-nginx with
    3.10; login (which needs signed sessions) whenever sessions are signed and nginx is on."""
    edge = "gateway" if options["python_version"] == "3.13" else "ingress-nginx"
    login = "oidc" if options["signed_sessions"] and options["include_nginx"] else "none"
    return {**options, "edge": edge, "auth": login}


MATRIX = [
    with_edge_and_login({"python_version": python, **dict(zip(FLAGS, values, strict=True))})
    for python in ("3.10", "3.13")
    for values in itertools.product([True, False], repeat=3)
]
K8S_MATRIX = [options for options in MATRIX if options["include_kubernetes"]]


def option_id(options: Mapping[str, Any]) -> str:
    """``py3.10-signed-k8s-no-nginx`` and the like."""
    words = [f"py{options['python_version']}"]
    words.append("signed" if options["signed_sessions"] else "unsigned")
    words.append("k8s" if options["include_kubernetes"] else "no-k8s")
    words.append("nginx" if options["include_nginx"] else "no-nginx")
    words += [options.get("edge", "gateway"), options.get("auth", "none")]
    return "-".join(words)


# ---------------------------------------------------------------------------------------------
# Reading the files
# ---------------------------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comment lines dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def final_stage(text: str) -> dict[str, Any]:
    """The last stage's ``cmd`` (exec form, parsed JSON), ``env``, ``user`` and ``healthcheck``."""
    stage: dict[str, Any] = {}
    for keyword, arguments in dockerfile_instructions(text):
        if keyword == "FROM":
            stage = {"from": arguments, "env": {}, "cmd": None, "user": None, "healthcheck": None}
        elif keyword == "ENV":
            for pair in arguments.split():
                name, _, value = pair.partition("=")
                stage["env"][name] = value
        elif keyword == "CMD":
            stage["cmd"] = json.loads(arguments)
        elif keyword == "USER":
            stage["user"] = arguments
        elif keyword == "HEALTHCHECK":
            stage["healthcheck"] = arguments
    return stage


def flag(command: Sequence[str], name: str) -> str | None:
    """The value of ``--name value`` or ``--name=value`` in an argument list."""
    for index, item in enumerate(command):
        if item == name and index + 1 < len(command):
            return command[index + 1]
        if item.startswith(name + "="):
            return item.split("=", 1)[1]
    return None


def load_manifests(k8s: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(file name, document)`` for every resource in ``k8s/`` (or ``k8s/monitoring/``) except the
    kustomization."""
    documents = []
    for path in sorted(k8s.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                documents.append((path.name, document))
    return documents


# ---------------------------------------------------------------------------------------------
# The policy
# ---------------------------------------------------------------------------------------------


def pod_spec(document: Mapping[str, Any]) -> dict[str, Any]:
    return ((document.get("spec") or {}).get("template") or {}).get("spec") or {}


def container_env(
    container: Mapping[str, Any], configmaps: Mapping[str, Mapping[str, Any]]
) -> dict[str, str]:
    """The literal environment of a container: its ConfigMap ``envFrom`` data, then its ``env`` values."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = (source or {}).get("configMapRef") or {}
        env.update({key: str(value) for key, value in (configmaps.get(ref.get("name")) or {}).items()})
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
    return env


def pre_stop_seconds(container: Mapping[str, Any]) -> float:
    """How long the preStop hook sleeps (``sleep N``, ``time.sleep(N)`` or the ``sleep`` action)."""
    pre_stop = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in pre_stop:
        return float(pre_stop["sleep"].get("seconds", 0))
    command = " ".join(map(str, (pre_stop.get("exec") or {}).get("command") or []))
    match = re.search(r"sleep[ (]\s*([0-9]+(?:\.[0-9]+)?)", command)
    return float(match.group(1)) if match else 0.0


def origin_problems(where: str, values: Mapping[str, str], command: Sequence[str]) -> list[str]:
    problems = [
        f"{where}: {name}={value!r} allows any websocket origin"
        for name, value in values.items()
        if (name.endswith("ALLOWED_ORIGINS") or name == "BOKEH_ALLOW_WS_ORIGIN") and "*" in value
    ]
    for index, item in enumerate(command):
        value = None
        if item == "--allow-websocket-origin" and index + 1 < len(command):
            value = command[index + 1]
        elif item.startswith("--allow-websocket-origin="):
            value = item.split("=", 1)[1]
        if value is not None and "*" in value:
            problems.append(f"{where}: --allow-websocket-origin {value!r} allows any websocket origin")
    return problems


def container_problems(
    where: str,
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    env: Mapping[str, str],
    answers: Mapping[str, Any],
    image: Mapping[str, Any] | None,
) -> list[str]:
    """Every policy rule that concerns one container of a workload."""
    problems: list[str] = []
    prefix = str(answers["package_name"]).upper() + "_"
    command = [str(item) for item in [*(container.get("command") or []), *(container.get("args") or [])]]

    for probe_name, wanted in PROBE_PATHS.items():
        probe = container.get(probe_name)
        if probe is None:
            problems.append(f"{where}: no {probe_name}")
            continue
        path = (probe.get("httpGet") or {}).get("path")
        if path not in ("/healthz", "/readyz"):
            problems.append(
                f"{where}: {probe_name} targets {path!r}; only /healthz or /readyz create no Bokeh session"
            )
        elif path != wanted:
            problems.append(f"{where}: {probe_name} targets {path}, should be {wanted}")

    resources = container.get("resources") or {}
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    memory_limit = quantity_bytes(limits.get("memory")) if "memory" in limits else None
    if memory_limit is None:
        problems.append(f"{where}: no memory limit")
    if "memory" not in requests:
        problems.append(f"{where}: no memory request")
    elif memory_limit is not None and quantity_bytes(requests["memory"]) != memory_limit:
        problems.append(
            f"{where}: memory request {requests['memory']} differs from the limit {limits['memory']}"
        )
    if "cpu" not in requests:
        problems.append(f"{where}: no CPU request")

    problems += origin_problems(where, env, command)

    for key, flag_name, setting in TIMEOUTS:
        value = flag(command, flag_name) or env.get(prefix + setting)
        source, expected = f"the answer {key}", str(answers[key])
        if image is not None:
            source, expected = "the Dockerfile CMD", str(flag(image["cmd"], flag_name))
        if value is None:
            problems.append(f"{where}: {flag_name} / {prefix}{setting} is not set")
        elif value != expected:
            problems.append(f"{where}: {prefix}{setting}={value} but {source} has {expected}")

    drain = float(env.get(prefix + "DRAIN_SECONDS", DEFAULT_DRAIN_S))
    pre_stop = pre_stop_seconds(container)
    grace = float(pod.get("terminationGracePeriodSeconds", DEFAULT_GRACE_S))
    if grace <= drain + pre_stop:
        budget = f"drain {drain:g} s + preStop {pre_stop:g} s"
        problems.append(f"{where}: terminationGracePeriodSeconds {grace:g} is not above {budget}")

    soft = env.get(prefix + "MEMORY_SOFT_LIMIT_MB")
    if soft is not None and memory_limit is not None and int(soft) * 2**20 >= memory_limit:
        problems.append(f"{where}: memory soft limit {soft} MiB is not below the limit {limits['memory']}")
    setting_limit = env.get(prefix + "MEMORY_LIMIT")
    if (
        setting_limit is not None
        and memory_limit is not None
        and quantity_bytes(setting_limit) != memory_limit
    ):
        problems.append(f"{where}: {prefix}MEMORY_LIMIT={setting_limit} differs from the container limit")

    context = {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}
    if context.get("runAsNonRoot") is not True:
        problems.append(f"{where}: runAsNonRoot is not true")
    if context.get("readOnlyRootFilesystem") is not True:
        problems.append(f"{where}: readOnlyRootFilesystem is not true")
    elif "/tmp" not in {mount.get("mountPath") for mount in container.get("volumeMounts") or []}:
        problems.append(f"{where}: read-only root filesystem without a writable /tmp")
    if context.get("allowPrivilegeEscalation") is not False:
        problems.append(f"{where}: allowPrivilegeEscalation is not false")
    if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
        problems.append(f"{where}: capabilities do not drop ALL")
    if (context.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append(f"{where}: seccompProfile is not RuntimeDefault")
    if image is not None and str(context.get("runAsUser")) != str(image["user"]).split(":")[0]:
        problems.append(
            f"{where}: runAsUser {context.get('runAsUser')} is not the image's USER {image['user']}"
        )
    return problems


def ingress_problems(document: Mapping[str, Any]) -> list[str]:
    where = f"Ingress/{document['metadata']['name']}"
    notes = document["metadata"].get("annotations") or {}
    key = "nginx.ingress.kubernetes.io/"
    problems = []
    if notes.get(key + "affinity") != "cookie":
        problems.append(f"{where}: no cookie affinity; a page and its websocket may reach different pods")
    if not notes.get(key + "session-cookie-name"):
        problems.append(f"{where}: no session-cookie-name")
    if not (document.get("spec") or {}).get("tls"):
        problems.append(f"{where}: serves the app without TLS (no spec.tls)")
    if notes.get(key + "session-cookie-secure") != "true":
        problems.append(f"{where}: the affinity cookie is not Secure (session-cookie-secure)")
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        value = notes.get(key + timeout, "60")
        if not str(value).isdigit() or float(value) <= KEEP_ALIVE_S:
            problems.append(
                f"{where}: {timeout} {value!r} is not above Bokeh's keep-alive ({KEEP_ALIVE_S:g} s)"
            )
    return problems


def duration_seconds(text: object) -> float | None:
    """A Gateway API duration (GEP-2257: ``1h``, ``30s``, ``1m30s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = _DURATION.findall(str(text))
    if not parts or "".join(number + unit for number, unit in parts) != str(text):
        return None
    return sum(int(number) * units[unit] for number, unit in parts)


def httproute_problems(route: Mapping[str, Any], gateways: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """A route that serves the app (it has backends) keeps a page and its websocket on one pod, over
    TLS, without a total-request timeout that cuts websockets."""
    where = f"HTTPRoute/{route['metadata']['name']}"
    spec = route.get("spec") or {}
    serving = [rule for rule in spec.get("rules") or [] if rule.get("backendRefs")]
    problems = []
    for rule in serving:
        persistence = rule.get("sessionPersistence")
        if persistence is None or persistence.get("type", "Cookie") != "Cookie":
            problems.append(
                f"{where}: no cookie session persistence; a page and its websocket may reach different pods"
            )
        timeout = (rule.get("timeouts") or {}).get("request")
        seconds = duration_seconds(timeout) if timeout is not None else None
        if seconds is None or 0 < seconds < WEBSOCKET_SAFE_S:
            problems.append(
                f"{where}: request timeout {timeout!r} would cut websockets "
                f'(use "0s" or >= {WEBSOCKET_SAFE_S:g} s)'
            )
    for parent in spec.get("parentRefs") or [] if serving else []:
        listeners = {
            item.get("name"): item for item in (gateways.get(parent.get("name")) or {}).get("listeners") or []
        }
        chosen = (
            [listeners[parent["sectionName"]]]
            if parent.get("sectionName") in listeners
            else list(listeners.values())
        )
        for listener in chosen:
            tls = listener.get("tls") or {}
            if listener.get("protocol") != "HTTPS" or not tls.get("certificateRefs"):
                problems.append(f"{where}: serves the app without TLS (listener {listener.get('name')!r})")
    return problems


def edge_backends(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, object]]:
    """``(edge, Service name, Service port number or name)`` of every route to the pods."""
    backends: list[tuple[str, str, object]] = []
    for doc in docs:
        name = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
        if doc.get("kind") == "HTTPRoute":
            for rule in (doc.get("spec") or {}).get("rules") or []:
                backends += [(name, ref["name"], ref.get("port")) for ref in rule.get("backendRefs") or []]
        elif doc.get("kind") == "Ingress":
            for rule in (doc.get("spec") or {}).get("rules") or []:
                for path in (rule.get("http") or {}).get("paths") or []:
                    service = (path.get("backend") or {}).get("service") or {}
                    port = service.get("port") or {}
                    backends.append((name, service.get("name"), port.get("number", port.get("name"))))
    return backends


def edge_hosts(docs: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """``(edge, host)`` for every host name a Gateway listener, HTTPRoute or Ingress serves."""
    hosts = []
    for doc in docs:
        name, spec = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}", doc.get("spec") or {}
        if doc.get("kind") == "Gateway":
            hosts += [
                (name, item["hostname"]) for item in spec.get("listeners") or [] if item.get("hostname")
            ]
        elif doc.get("kind") == "HTTPRoute":
            hosts += [(name, host) for host in spec.get("hostnames") or []]
        elif doc.get("kind") == "Ingress":
            hosts += [(name, rule["host"]) for rule in spec.get("rules") or [] if rule.get("host")]
    return hosts


def host_problems(docs: Sequence[Mapping[str, Any]], env: Mapping[str, str], prefix: str) -> list[str]:
    """Every host the edge serves is an allowed websocket origin (Bokeh refuses the page's websocket
    otherwise: the page loads, the plot never does)."""
    allowed = {origin.strip().split(":")[0] for origin in env.get(prefix + "ALLOWED_ORIGINS", "").split(",")}
    return [
        f"{edge} serves {host!r}, which is not in {prefix}ALLOWED_ORIGINS: its websockets would be refused"
        for edge, host in edge_hosts(docs)
        if host not in allowed
    ]


def exposure_problems(
    docs: Sequence[Mapping[str, Any]], env: Mapping[str, str], prefix: str, container: Mapping[str, Any]
) -> list[str]:
    """Behind an edge: /metrics not on the port it reaches, and --use-xheaders on."""
    backends = edge_backends(docs)
    if not backends:
        return []
    problems = []
    command = [str(item) for item in [*(container.get("command") or []), *(container.get("args") or [])]]
    if (
        env.get(prefix + "USE_XHEADERS", "false").lower() not in {"1", "true", "yes", "on"}
        and "--use-xheaders" not in command
    ):
        problems.append(
            f"behind {backends[0][0]} without --use-xheaders ({prefix}USE_XHEADERS): "
            "the server sees the proxy's address and http"
        )
    metrics_port = env.get(prefix + "METRICS_PORT", "0")
    if metrics_port in {"", "0"} or metrics_port == env.get(prefix + "PORT"):
        problems.append(
            f"/metrics is served on the Bokeh port, which {backends[0][0]} exposes (set {prefix}METRICS_PORT)"
        )
    ports = {item.get("name"): str(item.get("containerPort")) for item in container.get("ports") or []}
    services = {doc["metadata"]["name"]: doc for doc in docs if doc.get("kind") == "Service"}
    for edge, service_name, port in backends:
        for item in ((services.get(service_name) or {}).get("spec") or {}).get("ports") or []:
            if port in (item.get("port"), item.get("name")):
                target = str(ports.get(item.get("targetPort"), item.get("targetPort")))
                if target == metrics_port:
                    problems.append(
                        f"{edge} routes to the metrics port {target}: /metrics and /readyz are public"
                    )
    return problems


def manifest_policy_problems(
    docs: Sequence[Mapping[str, Any]], answers: Mapping[str, Any], dockerfile: str | None = None
) -> list[str]:
    """What in these Kubernetes documents breaks the deployment policy (empty when nothing does).

    ``dockerfile`` (its text) makes the timeouts and the user id be compared with the image's
    final stage; without it the timeouts are compared with the answers.
    """
    image = final_stage(dockerfile) if dockerfile is not None else None
    prefix = str(answers["package_name"]).upper() + "_"
    configmaps = {
        doc["metadata"]["name"]: doc.get("data") or {} for doc in docs if doc.get("kind") == "ConfigMap"
    }
    workloads = [doc for doc in docs if doc.get("kind") in WORKLOAD_KINDS]
    problems = [] if workloads else ["no Deployment among the manifests"]
    for doc in workloads:
        pod = pod_spec(doc)
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if pod.get("enableServiceLinks", True) is not False:
            problems.append(f"{name}: enableServiceLinks is not false (Service env vars clash with settings)")
        for container in pod.get("containers") or []:
            where = f"{name} container {container.get('name')!r}"
            env = container_env(container, configmaps)
            problems += container_problems(where, container, pod, env, answers, image)
            problems += [f"{where}: {problem}" for problem in exposure_problems(docs, env, prefix, container)]
            problems += [f"{where}: {problem}" for problem in host_problems(docs, env, prefix)]
    gateways = {
        doc["metadata"]["name"]: doc.get("spec") or {} for doc in docs if doc.get("kind") == "Gateway"
    }
    for doc in docs:
        if doc.get("kind") == "ConfigMap":
            problems += origin_problems(
                f"ConfigMap/{doc['metadata']['name']}", configmaps[doc["metadata"]["name"]], []
            )
        elif doc.get("kind") == "Ingress":
            problems += ingress_problems(doc)
        elif doc.get("kind") == "HTTPRoute":
            problems += httproute_problems(doc, gateways)
        elif doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            problems.append(
                f"Secret/{doc['metadata']['name']}: secret values in a tracked file "
                "(use the secretGenerator and the git-ignored secrets.env)"
            )
    return problems


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def hadolint() -> str:
    return shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))


def bake(cookies: Any, options: Mapping[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Bake with ``options``; the project and the answers it was baked with."""
    result = cookies.bake(extra_context=dict(options or {}))
    assert result.exit_code == 0, result.exception
    return Path(result.project_path), dict(result.context)


@pytest.fixture(scope="module", params=MATRIX, ids=option_id)
def baked(request: pytest.FixtureRequest, cookies_session: Any) -> tuple[Path, dict[str, Any]]:
    """A project baked with one option set of the whole matrix, and its answers."""
    return bake(cookies_session, request.param)


@pytest.fixture(scope="module", params=K8S_MATRIX, ids=option_id)
def baked_k8s(request: pytest.FixtureRequest, cookies_session: Any) -> tuple[Path, dict[str, Any]]:
    """A project baked with Kubernetes manifests (signed or not, nginx or not, both Pythons)."""
    return bake(cookies_session, request.param)


@pytest.fixture(scope="module")
def default_bake(cookies_session: Any) -> tuple[Path, dict[str, Any]]:
    """The default answers (Kubernetes and nginx on, unsigned sessions)."""
    return bake(cookies_session)


# ---------------------------------------------------------------------------------------------
# Dockerfile
# ---------------------------------------------------------------------------------------------


def hadolint_findings(dockerfile: Path) -> list[dict[str, Any]]:
    completed = subprocess.run(
        [hadolint(), "--format", "json", "--failure-threshold", "style", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    findings = json.loads(completed.stdout or "[]")
    assert (completed.returncode == 0) == (not findings), completed.stderr
    return findings


def test_dockerfile_has_no_hadolint_findings(baked: tuple[Path, dict[str, Any]]) -> None:
    assert hadolint_findings(baked[0] / "Dockerfile") == []


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install bokeh\nCMD python -m app serve\n", encoding="utf-8")
    codes = {finding["code"] for finding in hadolint_findings(bad)}
    assert {"DL3006", "DL3013", "DL3042", "DL3025"} <= codes


def test_dockerfile_runs_the_answers(baked: tuple[Path, dict[str, Any]]) -> None:
    project, answers = baked
    text = (project / "Dockerfile").read_text(encoding="utf-8")
    stage = final_stage(text)
    prefix = answers["package_name"].upper() + "_"
    assert stage["from"] == f"python:{answers['python_version']}-slim"
    stages = [arguments for keyword, arguments in dockerfile_instructions(text) if keyword == "FROM"]
    assert stages == [f"python:{answers['python_version']}-slim AS build", stage["from"]], "build + runtime"
    cmd = stage["cmd"]
    assert cmd[:4] == ["python", "-m", answers["package_name"], "serve"]
    assert flag(cmd, "--address") == "0.0.0.0"
    assert flag(cmd, "--port") == str(answers["port"])
    for key, flag_name, _setting in TIMEOUTS:
        assert flag(cmd, flag_name) == str(answers[key])
    assert stage["env"][prefix + "ALLOWED_ORIGINS"] == answers["allowed_origins"]
    assert origin_problems("Dockerfile", stage["env"], cmd) == []
    assert stage["env"]["PYTHONUNBUFFERED"] == "1"
    assert stage["env"]["PYTHONDONTWRITEBYTECODE"] == "1"
    assert re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", stage["user"]), "USER must be a numeric non-root id"
    assert "/healthz" in stage["healthcheck"] and "curl" not in stage["healthcheck"]
    assert ("STOPSIGNAL", "SIGTERM") in dockerfile_instructions(text)


# ---------------------------------------------------------------------------------------------
# Kubernetes manifests
# ---------------------------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """The CRD schema with ``additionalProperties: false`` wherever it lists ``properties`` (the API
    server prunes or, with strict field validation, refuses unknown fields; jsonschema would not)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    tightened = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        tightened["additionalProperties"] = False
    return tightened


@functools.cache
def crd_validator(kind: str) -> jsonschema.Draft7Validator:
    """A strict validator for a Gateway API or Prometheus Operator kind (``tests/crd_schemas/``)."""
    record = json.loads((CRD_SCHEMAS / f"{kind.lower()}-v1.json").read_text(encoding="utf-8"))
    schema = strict(record["openAPIV3Schema"])
    schema["properties"]["metadata"] = METADATA_SCHEMA
    return jsonschema.Draft7Validator(schema)


#: What the API server checks of ``metadata`` for every kind (CRD schemas leave it open).
METADATA_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def validation_errors(documents: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    errors = []
    for name, document in documents:
        if (document.get("apiVersion"), document.get("kind")) in CRD_KINDS:
            for error in crd_validator(str(document["kind"])).iter_errors(dict(document)):
                path = ".".join(map(str, error.absolute_path))
                errors.append(f"{name}: {document['kind']}: {path}: {error.message}")
            continue
        try:
            kubernetes_validate.validate(dict(document), KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(map(str, error.path))
            errors.append(f"{name}: {document.get('kind')}: {path}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            errors.append(f"{name}: {error.message}")
    return errors


def test_manifests_validate_against_kubernetes_schemas(baked_k8s: tuple[Path, dict[str, Any]]) -> None:
    """Built-in kinds against Kubernetes 1.30, Gateway API and Prometheus Operator kinds against
    their CRD schemas, all strict; ``monitoring/`` included."""
    project, answers = baked_k8s
    documents = load_manifests(project / "k8s") + load_manifests(project / "k8s" / "monitoring")
    kinds = {document["kind"] for _name, document in documents}
    edge_kinds = {"Gateway", "HTTPRoute"} if answers["edge"] == "gateway" else {"Ingress"}
    assert edge_kinds | {"ServiceMonitor", "PrometheusRule", "Deployment"} <= kinds, kinds
    assert validation_errors(documents) == []


def test_validators_reject_unknown_and_mistyped_fields(default_bake: tuple[Path, dict[str, Any]]) -> None:
    """Negative control: one error per broken field, built-in kinds and CRD kinds alike."""
    documents = load_manifests(default_bake[0] / "k8s") + load_manifests(
        default_bake[0] / "k8s" / "monitoring"
    )
    by_kind: dict[str, dict[str, Any]] = {}
    for _name, document in documents:  # the first of each kind (the app's route, not the redirect)
        by_kind.setdefault(document["kind"], copy.deepcopy(document))
    pod_spec(by_kind["Deployment"])["containers"][0]["livenessProbe"]["httpGet"]["pathh"] = "/healthz"
    by_kind["Service"]["spec"]["ports"][0]["port"] = "eighty"
    rule = by_kind["HTTPRoute"]["spec"]["rules"][0]
    rule["sessionPersistence"]["cookieConfig"]["lifetimeType"] = "Forever"  # not in the enum
    rule["timeouts"]["request"] = "1 hour"  # not a Gateway API duration
    rule["sessionAffinity"] = "cookie"  # no such field
    by_kind["Gateway"]["spec"]["listeners"][0]["tls"]["certificateRefs"][0]["nam"] = "x"
    by_kind["ServiceMonitor"]["spec"]["endpoints"][0]["interval"] = "often"
    by_kind["PrometheusRule"]["spec"]["groups"][0]["rules"][0]["for"] = 10
    errors = validation_errors([(kind, document) for kind, document in by_kind.items()])
    assert len(errors) == 8, "\n".join(errors)
    assert sum("HTTPRoute" in error for error in errors) == 3, errors


def test_kustomization_lists_exactly_the_manifests(baked_k8s: tuple[Path, dict[str, Any]]) -> None:
    project, answers = baked_k8s
    k8s = project / "k8s"
    kustomization = yaml.safe_load((k8s / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = list(kustomization["resources"])
    assert len(listed) == len(set(listed)), "a resource is listed twice"
    on_disk = {path.name for path in k8s.iterdir() if path.suffix in {".yaml", ".yml"}} - {
        "kustomization.yaml"
    }
    assert set(listed) == on_disk
    assert on_disk == K8S_FILES | EDGE_FILES[answers["edge"]]
    generators = kustomization.get("secretGenerator") or []
    if answers["signed_sessions"]:
        assert [entry["envs"] for entry in generators] == [["secrets.env"]]
        assert (k8s / "secrets.env").is_file()
    else:
        assert generators == [] and not (k8s / "secrets.env").exists()
    monitoring = yaml.safe_load((k8s / "monitoring" / "kustomization.yaml").read_text(encoding="utf-8"))
    assert set(monitoring["resources"]) | {"kustomization.yaml", "dashboard.json"} == {
        path.name for path in (k8s / "monitoring").iterdir()
    }


def kubectl() -> str | None:
    return shutil.which("kubectl")


@pytest.mark.skipif(kubectl() is None, reason="kubectl (with its built-in kustomize) is not installed")
def test_kustomize_builds_the_generated_secret_and_the_monitoring(
    baked_k8s: tuple[Path, dict[str, Any]],
) -> None:
    """``kubectl kustomize`` (offline) builds both folders; the generated Secret has the values of
    secrets.env and the Deployment's envFrom points at its hashed name; the output validates."""
    project, answers = baked_k8s
    built = subprocess.run(
        [str(kubectl()), "kustomize", str(project / "k8s")], capture_output=True, text=True, timeout=60
    )
    assert built.returncode == 0, built.stderr
    documents = [document for document in yaml.safe_load_all(built.stdout) if document]
    assert validation_errors([("kustomize build", document) for document in documents]) == []
    secrets = [document for document in documents if document["kind"] == "Secret"]
    deployment = next(document for document in documents if document["kind"] == "Deployment")
    sources = pod_spec(deployment)["containers"][0]["envFrom"]
    if answers["signed_sessions"]:
        (secret,) = secrets
        assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources
        assert secret["metadata"]["name"].startswith(f"{answers['project_slug']}-secrets-")
        expected = rendered_checks.env_file_values(
            (project / "k8s" / "secrets.env").read_text(encoding="utf-8")
        )
        decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
        assert decoded == expected
    else:
        assert secrets == [] and all("secretRef" not in source for source in sources)
    monitoring = subprocess.run(
        [str(kubectl()), "kustomize", str(project / "k8s" / "monitoring")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert monitoring.returncode == 0, monitoring.stderr
    monitoring_docs = [document for document in yaml.safe_load_all(monitoring.stdout) if document]
    assert validation_errors([("kustomize build monitoring", document) for document in monitoring_docs]) == []
    dashboard = next(document for document in monitoring_docs if document["kind"] == "ConfigMap")
    assert json.loads(dashboard["data"]["dashboard.json"])["panels"]


def test_manifests_meet_the_policy(baked_k8s: tuple[Path, dict[str, Any]]) -> None:
    project, answers = baked_k8s
    docs = [document for _name, document in load_manifests(project / "k8s")]
    dockerfile = (project / "Dockerfile").read_text(encoding="utf-8")
    assert manifest_policy_problems(docs, answers, dockerfile) == []
    assert manifest_policy_problems(docs, answers) == []


def test_manifests_follow_the_answers(baked_k8s: tuple[Path, dict[str, Any]]) -> None:
    project, answers = baked_k8s
    docs = {document["kind"]: document for _name, document in load_manifests(project / "k8s")}
    prefix = answers["package_name"].upper() + "_"
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == int(answers["replicas"])
    assert docs["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == int(answers["replicas"])
    container = pod_spec(deployment)["containers"][0]
    assert container["resources"]["limits"]["memory"] == answers["memory_limit"]
    data = docs["ConfigMap"]["data"]
    limit_mib = quantity_bytes(answers["memory_limit"]) / 2**20  # type: ignore[operator]
    assert int(data[prefix + "MEMORY_SOFT_LIMIT_MB"]) == int(limit_mib * 0.8)
    assert data[prefix + "ALLOWED_ORIGINS"] == answers["allowed_origins"]
    assert container["ports"][0]["containerPort"] == int(data[prefix + "PORT"]) == int(answers["port"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["prometheus.io/port"]
        == data[prefix + "METRICS_PORT"]
        == str(container["ports"][1]["containerPort"])
    )
    env = {entry["name"]: entry for entry in container.get("env") or []}
    secret_refs = [source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source]
    if answers["signed_sessions"]:
        assert env["BOKEH_SIGN_SESSIONS"]["value"] == "true"
        assert secret_refs == [f"{answers['project_slug']}-secrets"]
    else:
        assert "BOKEH_SIGN_SESSIONS" not in env and not secret_refs
    assert "Secret" not in docs, "secrets come from the secretGenerator, never from a manifest"
    if answers["auth"] == "oidc":
        assert data[prefix + "AUTH"] == "oidc" and data[prefix + "OIDC_CLIENT_ID"] == answers["project_slug"]
    else:
        assert prefix + "AUTH" not in data


def test_a_public_origin_becomes_the_gateway_host(cookies: Any) -> None:
    """With a public host among the origins, the Gateway listeners and the route serve that host
    (cert-manager can then issue for it); localhost and IP origins are never used as hosts."""
    project, answers = bake(cookies, {"allowed_origins": "localhost:5006,dash.example.com,10.0.0.5:80"})
    documents = load_manifests(project / "k8s")
    assert validation_errors(documents) == []
    docs = [document for _name, document in documents]
    assert {host for _edge, host in edge_hosts(docs)} == {"dash.example.com"}
    assert len(edge_hosts(docs)) == 3  # both listeners and the app's route
    assert manifest_policy_problems(docs, answers, (project / "Dockerfile").read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("memory_limit", ["512Mi", "1.5Gi", "2G", "300000000"])
def test_soft_limit_is_80_percent_of_any_quantity(cookies: Any, memory_limit: str) -> None:
    project, answers = bake(cookies, {"memory_limit": memory_limit})
    docs = [document for _name, document in load_manifests(project / "k8s")]
    configmap = next(doc for doc in docs if doc["kind"] == "ConfigMap")
    soft = int(configmap["data"][answers["package_name"].upper() + "_MEMORY_SOFT_LIMIT_MB"])
    assert soft == int(quantity_bytes(memory_limit) * 0.8 / 2**20)  # type: ignore[operator]
    assert manifest_policy_problems(docs, answers, (project / "Dockerfile").read_text(encoding="utf-8")) == []


# ---------------------------------------------------------------------------------------------
# The policy can fail: negative controls
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def default_docs(
    default_bake: tuple[Path, dict[str, Any]],
) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Fresh copies of the default manifests, its answers and its Dockerfile text."""
    project, answers = default_bake
    docs = [copy.deepcopy(document) for _name, document in load_manifests(project / "k8s")]
    return docs, answers, (project / "Dockerfile").read_text(encoding="utf-8")


def find(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == kind)


def server_container(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return pod_spec(find(docs, "Deployment"))["containers"][0]


def test_bad_manifest_reports_each_problem(
    default_docs: tuple[list[dict[str, Any]], dict[str, Any], str],
) -> None:
    docs, answers, dockerfile = default_docs
    container = server_container(docs)
    container["readinessProbe"]["httpGet"]["path"] = "/app"
    del container["resources"]["limits"]["memory"]
    prefix = answers["package_name"].upper() + "_"
    find(docs, "ConfigMap")["data"][prefix + "ALLOWED_ORIGINS"] = "*"
    problems = manifest_policy_problems(docs, answers, dockerfile)
    text = "\n".join(problems)
    assert "readinessProbe targets '/app'" in text
    assert "no memory limit" in text
    assert f"{prefix}ALLOWED_ORIGINS='*' allows any websocket origin" in text
    assert len(problems) == 4, problems  # the origin is reported for the ConfigMap and the container


def _probe_on_root(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["livenessProbe"]["httpGet"]["path"] = "/"


def _liveness_on_readyz(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["livenessProbe"]["httpGet"]["path"] = "/readyz"


def _tcp_startup_probe(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["startupProbe"] = {"tcpSocket": {"port": "http"}}


def _request_below_limit(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["resources"]["requests"]["memory"] = "256Mi"


def _no_memory_request(docs: list[dict[str, Any]], prefix: str) -> None:
    del server_container(docs)["resources"]["requests"]["memory"]


def _no_cpu_request(docs: list[dict[str, Any]], prefix: str) -> None:
    del server_container(docs)["resources"]["requests"]["cpu"]


def _wildcard_flag(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["args"] = ["--allow-websocket-origin=*"]


def _env_wildcard(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs).setdefault("env", []).append({"name": "BOKEH_ALLOW_WS_ORIGIN", "value": "*"})


def _lifetime_disagrees(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "ConfigMap")["data"][prefix + "UNUSED_SESSION_LIFETIME_MS"] = "15000"


def _interval_flag_disagrees(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["args"] = ["--check-unused-sessions", "17000"]


def _short_grace(docs: list[dict[str, Any]], prefix: str) -> None:
    pod_spec(find(docs, "Deployment"))["terminationGracePeriodSeconds"] = 15  # drain 10 + preStop 5


def _long_drain(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "ConfigMap")["data"][prefix + "DRAIN_SECONDS"] = "30"


def _soft_limit_at_limit(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "ConfigMap")["data"][prefix + "MEMORY_SOFT_LIMIT_MB"] = "1024"  # = 1Gi


def _setting_limit_disagrees(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "ConfigMap")["data"][prefix + "MEMORY_LIMIT"] = "2Gi"


def _root_user(docs: list[dict[str, Any]], prefix: str) -> None:
    del server_container(docs)["securityContext"]["runAsNonRoot"]
    del pod_spec(find(docs, "Deployment"))["securityContext"]["runAsNonRoot"]


def _writable_root(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["securityContext"]["readOnlyRootFilesystem"] = False


def _no_tmp(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["volumeMounts"] = []


def _escalation(docs: list[dict[str, Any]], prefix: str) -> None:
    del server_container(docs)["securityContext"]["allowPrivilegeEscalation"]


def _capabilities(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["securityContext"]["capabilities"] = {"drop": ["NET_RAW"]}


def _no_seccomp(docs: list[dict[str, Any]], prefix: str) -> None:
    del pod_spec(find(docs, "Deployment"))["securityContext"]["seccompProfile"]


def _other_uid(docs: list[dict[str, Any]], prefix: str) -> None:
    server_container(docs)["securityContext"]["runAsUser"] = 1000


def _service_links(docs: list[dict[str, Any]], prefix: str) -> None:
    del pod_spec(find(docs, "Deployment"))["enableServiceLinks"]


def _metrics_on_bokeh_port(docs: list[dict[str, Any]], prefix: str) -> None:
    del find(docs, "ConfigMap")["data"][prefix + "METRICS_PORT"]


def _route_to_metrics_port(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "HTTPRoute")["spec"]["rules"][0]["backendRefs"][0]["port"] = 9464


def _no_xheaders(docs: list[dict[str, Any]], prefix: str) -> None:
    del find(docs, "ConfigMap")["data"][prefix + "USE_XHEADERS"]


def _tracked_secret(docs: list[dict[str, Any]], prefix: str) -> None:
    docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "key"}, "stringData": {"K": "v"}})


def _no_session_persistence(docs: list[dict[str, Any]], prefix: str) -> None:
    del find(docs, "HTTPRoute")["spec"]["rules"][0]["sessionPersistence"]


def _route_timeout(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "HTTPRoute")["spec"]["rules"][0]["timeouts"]["request"] = "15s"


def _host_not_an_origin(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "HTTPRoute")["spec"]["hostnames"] = ["dash.example.com"]


def _route_on_plain_http(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "HTTPRoute")["spec"]["parentRefs"][0]["sectionName"] = "http"


def _no_affinity(docs: list[dict[str, Any]], prefix: str) -> None:
    del find(docs, "Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/affinity"]


def _short_proxy_timeout(docs: list[dict[str, Any]], prefix: str) -> None:
    find(docs, "Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] = "30"


def _insecure_cookie(docs: list[dict[str, Any]], prefix: str) -> None:
    del find(docs, "Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/session-cookie-secure"]


def _ingress_without_tls(docs: list[dict[str, Any]], prefix: str) -> None:
    del find(docs, "Ingress")["spec"]["tls"]


def _ingress_to_metrics_port(docs: list[dict[str, Any]], prefix: str) -> None:
    backend = find(docs, "Ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    backend["service"]["port"] = {"name": "metrics"}


MUTATIONS = {
    "probe-on-root": (_probe_on_root, "livenessProbe targets '/'"),
    "liveness-on-readyz": (_liveness_on_readyz, "livenessProbe targets /readyz, should be /healthz"),
    "tcp-startup-probe": (_tcp_startup_probe, "startupProbe targets None"),
    "request-below-limit": (_request_below_limit, "memory request 256Mi differs from the limit"),
    "no-memory-request": (_no_memory_request, "no memory request"),
    "no-cpu-request": (_no_cpu_request, "no CPU request"),
    "wildcard-flag": (_wildcard_flag, "--allow-websocket-origin '*'"),
    "wildcard-env": (_env_wildcard, "BOKEH_ALLOW_WS_ORIGIN='*'"),
    "lifetime-disagrees": (
        _lifetime_disagrees,
        "UNUSED_SESSION_LIFETIME_MS=15000 but the Dockerfile CMD has",
    ),
    "interval-flag-disagrees": (
        _interval_flag_disagrees,
        "CHECK_UNUSED_SESSIONS_MS=17000 but the Dockerfile",
    ),
    "short-grace": (_short_grace, "terminationGracePeriodSeconds 15 is not above drain 10 s + preStop 5 s"),
    "long-drain": (_long_drain, "terminationGracePeriodSeconds 30 is not above drain 30 s"),
    "soft-limit-at-limit": (_soft_limit_at_limit, "soft limit 1024 MiB is not below the limit"),
    "setting-limit-disagrees": (
        _setting_limit_disagrees,
        "MEMORY_LIMIT=2Gi differs from the container limit",
    ),
    "root": (_root_user, "runAsNonRoot is not true"),
    "writable-root": (_writable_root, "readOnlyRootFilesystem is not true"),
    "no-tmp": (_no_tmp, "without a writable /tmp"),
    "escalation": (_escalation, "allowPrivilegeEscalation is not false"),
    "capabilities": (_capabilities, "capabilities do not drop ALL"),
    "no-seccomp": (_no_seccomp, "seccompProfile is not RuntimeDefault"),
    "uid-not-image-user": (_other_uid, "runAsUser 1000 is not the image's USER"),
    "service-links": (_service_links, "enableServiceLinks is not false"),
    "metrics-on-bokeh-port": (_metrics_on_bokeh_port, "/metrics is served on the Bokeh port"),
    "route-to-metrics-port": (_route_to_metrics_port, "routes to the metrics port 9464"),
    "no-xheaders": (_no_xheaders, "without --use-xheaders"),
    "tracked-secret": (_tracked_secret, "Secret/key: secret values in a tracked file"),
    "no-session-persistence": (_no_session_persistence, "no cookie session persistence"),
    "route-timeout": (_route_timeout, "request timeout '15s' would cut websockets"),
    "route-on-plain-http": (_route_on_plain_http, "serves the app without TLS (listener 'http')"),
    "host-not-an-origin": (_host_not_an_origin, "serves 'dash.example.com', which is not in"),
}
#: Rules of the ingress-nginx edge, applied to a bake with edge=ingress-nginx.
INGRESS_MUTATIONS = {
    "no-affinity": (_no_affinity, "no cookie affinity"),
    "short-proxy-timeout": (_short_proxy_timeout, "proxy-read-timeout '30' is not above Bokeh's keep-alive"),
    "insecure-cookie": (_insecure_cookie, "the affinity cookie is not Secure"),
    "ingress-without-tls": (_ingress_without_tls, "serves the app without TLS"),
    "ingress-to-metrics-port": (_ingress_to_metrics_port, "routes to the metrics port 9464"),
    "ingress-no-xheaders": (_no_xheaders, "behind Ingress/"),
    "ingress-metrics-on-bokeh-port": (_metrics_on_bokeh_port, "/metrics is served on the Bokeh port"),
}


@pytest.mark.parametrize("mutation", MUTATIONS, ids=list(MUTATIONS))
def test_each_policy_rule_can_fail(
    default_docs: tuple[list[dict[str, Any]], dict[str, Any], str], mutation: str
) -> None:
    docs, answers, dockerfile = default_docs
    mutate, expected = MUTATIONS[mutation]
    mutate(docs, answers["package_name"].upper() + "_")
    problems = manifest_policy_problems(docs, answers, dockerfile)
    assert len(problems) == 1, problems
    assert expected in problems[0], problems


@pytest.fixture(scope="module")
def ingress_bake(cookies_session: Any) -> tuple[Path, dict[str, Any]]:
    """The default answers with the ingress-nginx edge."""
    return bake(cookies_session, {"edge": "ingress-nginx"})


@pytest.mark.parametrize("mutation", INGRESS_MUTATIONS, ids=list(INGRESS_MUTATIONS))
def test_each_ingress_rule_can_fail(ingress_bake: tuple[Path, dict[str, Any]], mutation: str) -> None:
    project, answers = ingress_bake
    docs = [copy.deepcopy(document) for _name, document in load_manifests(project / "k8s")]
    dockerfile = (project / "Dockerfile").read_text(encoding="utf-8")
    assert manifest_policy_problems(docs, answers, dockerfile) == []
    mutate, expected = INGRESS_MUTATIONS[mutation]
    mutate(docs, answers["package_name"].upper() + "_")
    problems = manifest_policy_problems(docs, answers, dockerfile)
    assert len(problems) == 1, problems
    assert expected in problems[0], problems


# ---------------------------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------------------------


def test_nginx_config_is_present_only_when_chosen(baked: tuple[Path, dict[str, Any]]) -> None:
    project, answers = baked
    conf = project / "deploy" / "nginx.conf"
    assert conf.is_file() == bool(answers["include_nginx"])
    if not conf.is_file():
        return
    text = conf.read_text(encoding="utf-8")
    backends = re.findall(r"^\s*server\s+127\.0\.0\.1:(\d+);", text, flags=re.MULTILINE)
    listen = re.findall(r"^\s*listen\s+(\d+)( ssl)?;", text, flags=re.MULTILINE)
    assert backends == [str(answers["port"]), str(int(answers["port"]) + 1)]
    assert len(listen) == 2 and not {port for port, _ssl in listen} & set(backends)
    (tls_port,) = [port for port, ssl in listen if ssl]
    assert f"return 301 https://$host:{tls_port}$request_uri;" in text, "plain HTTP must redirect to TLS"
    assert re.search(
        r'^\s*""\s+"\S+=\$request_id; Path=/; HttpOnly; Secure; SameSite=Lax";', text, flags=re.MULTILINE
    )
    assert re.search(r"^\s*location ~ \^/\(readyz\|metrics\)/\?\$ \{\s*return 404;", text, flags=re.MULTILINE)
    assert "X-Forwarded-Proto $scheme" in text
    for timeout in re.findall(r"proxy_(?:read|send)_timeout\s+(\d+)s;", text):
        assert int(timeout) > KEEP_ALIVE_S
    assert "map $http_upgrade $connection_upgrade" in text
    assert re.search(r"^\s*proxy_buffering off;", text, flags=re.MULTILINE)
    assert re.search(r"^\s*hash \$route_key consistent;", text, flags=re.MULTILINE)
