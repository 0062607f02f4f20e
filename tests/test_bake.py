"""Bake tests: the file set per option set, no template leftovers, lint, and the project's own suite."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import rendered_checks
from conftest import interpreters
from test_hostile_answers import NAMES_THAT_BAKE

CORE_FILES = {
    ".cookiecutter-replay.json",
    ".dockerignore",
    ".github/renovate.json",
    ".github/workflows/ci.yml",
    ".gitignore",
    ".pre-commit-config.yaml",
    "Dockerfile",
    "README.md",
    "benchmarks/apps/copied/app_hooks.py",
    "benchmarks/apps/copied/main.py",
    "benchmarks/apps/naive/main.py",
    "benchmarks/apps/naive/naive_registry.py",
    "benchmarks/capacity.py",
    "benchmarks/compare.py",
    "benchmarks/crowd.py",
    "benchmarks/expiry_and_throughput.py",
    "benchmarks/memory.py",
    "benchmarks/reference/bokeh-3.9/expiry_and_throughput.json",
    "benchmarks/reference/bokeh-3.9/memory.json",
    "benchmarks/reference/capacity.json",
    "benchmarks/reference/expiry_and_throughput.json",
    "benchmarks/reference/memory.json",
    "benchmarks/report.py",
    "benchmarks/snapshot.py",
    "docs/benchmark-capacity.png",
    "docs/benchmark-crowd.png",
    "docs/benchmark-expiry.png",
    "docs/benchmark-memory.png",
    "monitor_memory.py",
    "pyproject.toml",
    "src/{pkg}/__init__.py",
    "src/{pkg}/__main__.py",
    "src/{pkg}/app/__init__.py",
    "src/{pkg}/app/app_hooks.py",
    "src/{pkg}/app/data.py",
    "src/{pkg}/app/main.py",
    "src/{pkg}/app/shared.py",
    "src/{pkg}/server/__init__.py",
    "src/{pkg}/server/admission.py",
    "src/{pkg}/server/answers.json",
    "src/{pkg}/server/cleanup.py",
    "src/{pkg}/server/cli.py",
    "src/{pkg}/server/default_orphans.py",
    "src/{pkg}/server/full_collections.py",
    "src/{pkg}/server/guard.py",
    "src/{pkg}/server/lifecycle.py",
    "src/{pkg}/server/login.py",
    "src/{pkg}/server/memory.py",
    "src/{pkg}/server/next_tick_cycles.py",
    "src/{pkg}/server/patches.py",
    "src/{pkg}/server/metrics.py",
    "src/{pkg}/server/oidc.py",
    "src/{pkg}/server/ops.py",
    "src/{pkg}/server/per_process.py",
    "src/{pkg}/server/runtime.py",
    "src/{pkg}/server/serve.py",
    "src/{pkg}/server/server_control.py",
    "src/{pkg}/server/session_gate.py",
    "src/{pkg}/server/session_locals.py",
    "src/{pkg}/server/session_users.py",
    "src/{pkg}/server/settings.py",
    "src/{pkg}/server/shutdown.py",
    "src/{pkg}/server/sliced_expiry.py",
    "src/{pkg}/server/stall_free.py",
    "src/{pkg}/server/unconnected.py",
    "src/{pkg}/server/unwatched_callbacks.py",
    "src/{pkg}/server/websocket_cycles.py",
    "src/{pkg}_devtools/__init__.py",
    "src/{pkg}_devtools/bokeh_ws.py",
    "src/{pkg}_devtools/crowd.py",
    "src/{pkg}_devtools/leakcheck.py",
    "src/{pkg}_devtools/memory_cgroup.py",
    "src/{pkg}_devtools/monitor.py",
    "src/{pkg}_devtools/nginx.py",
    "src/{pkg}_devtools/polling.py",
    "src/{pkg}_devtools/pretend.py",
    "src/{pkg}_devtools/pretend_bokeh/sitecustomize.py",
    "src/{pkg}_devtools/serving.py",
    "src/{pkg}_devtools/testing.py",
    "tests/apps/cleanup_chain/app_hooks.py",
    "tests/apps/cleanup_chain/main.py",
    "tests/apps/cleanups/app_hooks.py",
    "tests/apps/cleanups/main.py",
    "tests/apps/globals_trap/app_hooks.py",
    "tests/apps/globals_trap/main.py",
    "tests/apps/guide/app_hooks.py",
    "tests/apps/guide/main.py",
    "tests/apps/leaky/app_hooks.py",
    "tests/apps/leaky/main.py",
    "tests/apps/slow_leak/app_hooks.py",
    "tests/apps/slow_leak/main.py",
    "tests/apps/slow_leak/slow_leak_registry.py",
    "tests/apps/whoami/main.py",
    "tests/conftest.py",
    "tests/leaky_registry.py",
    "tests/probe.py",
    "tests/test_admission.py",
    "tests/test_allocator.py",
    "tests/test_benchmarks.py",
    "tests/test_browser.py",
    "tests/test_cleanups.py",
    "tests/test_cli.py",
    "tests/test_default_orphans.py",
    "tests/test_deploy.py",
    "tests/test_full_collections.py",
    "tests/test_image.py",
    "tests/test_layout.py",
    "tests/test_leaks.py",
    "tests/test_manifests.py",
    "tests/test_login.py",
    "tests/test_login_browser.py",
    "tests/test_memory_cgroup.py",
    "tests/test_memory_limit.py",
    "tests/test_monitor.py",
    "tests/test_monitoring.py",
    "tests/test_next_tick_cycles.py",
    "tests/test_ops.py",
    "tests/test_sliced_expiry.py",
    "tests/test_patches.py",
    "tests/test_smoke.py",
    "tests/test_soak.py",
    "tests/test_stall_free.py",
    "tests/test_unwatched_callbacks.py",
    "tests/test_websocket_cycles.py",
    "uv.lock",
}
OPTIONAL_FILES: dict[str, set[str]] = {
    "include_kubernetes": {
        "k8s/configmap.yaml",
        "k8s/deployment.yaml",
        "k8s/hpa.yaml",
        "k8s/kustomization.yaml",
        "k8s/pdb.yaml",
        "k8s/service.yaml",
        "k8s/monitoring/dashboard.json",
        "k8s/monitoring/kustomization.yaml",
        "k8s/monitoring/prometheusrule.yaml",
        "k8s/monitoring/servicemonitor.yaml",
    },
    "include_nginx": {"deploy/nginx.conf"},
}
#: Files present only when every option of the key is on ("edge=gateway" is an answer, not a flag).
COMBINED_FILES: dict[tuple[str, ...], set[str]] = {
    ("include_kubernetes", "signed_sessions"): {"k8s/secrets.env"},
    ("include_kubernetes", "edge=gateway"): {"k8s/gateway.yaml", "k8s/httproute.yaml"},
    ("include_kubernetes", "edge=ingress-nginx"): {"k8s/ingress.yaml"},
}
FLAGS = ("include_kubernetes", "include_nginx", "signed_sessions")


def with_edge_and_login(options: dict[str, object]) -> dict[str, object]:
    """Each flag combination once, the edge alternating with nginx and login on where sessions are
    signed with Kubernetes (login needs signed sessions)."""
    edge = "gateway" if options["include_nginx"] else "ingress-nginx"
    login = "oidc" if options["signed_sessions"] and options["include_kubernetes"] else "none"
    return {**options, "edge": edge, "auth": login}


MATRIX = [
    with_edge_and_login(dict(zip(FLAGS, values, strict=True)))
    for values in itertools.product([True, False], repeat=3)
]
LEFTOVER = re.compile(r"{{|{%|{#|cookiecutter\.")


def matrix_id(options: dict[str, object]) -> str:
    flags = [("" if options[name] else "no-") + name.replace("include_", "") for name in FLAGS]
    return "-".join([*flags, str(options["edge"]), str(options["auth"])])


def is_chosen(options: dict[str, object], option: str) -> bool:
    """A yes/no flag that is on, or ``key=value`` that is the answer."""
    key, _, value = option.partition("=")
    return options.get(key) == value if value else bool(options.get(key))


def expected_files(options: dict[str, object], package: str) -> set[str]:
    files = {path.format(pkg=package) for path in CORE_FILES}
    for option, extra in OPTIONAL_FILES.items():
        if options.get(option):
            files |= extra
    for required, extra in COMBINED_FILES.items():
        if all(is_chosen(options, option) for option in required):
            files |= extra
    return files


def rendered_files(project: Path) -> set[str]:
    return {
        str(path.relative_to(project))
        for path in project.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and ".git" not in path.parts
    }


BINARY_SUFFIXES = {".png"}  # copied unrendered by cookiecutter (binary files are never rendered)


@pytest.mark.parametrize("options", MATRIX, ids=matrix_id)
def test_bake_matrix_file_set_and_no_leftovers(cookies, options: dict[str, object]) -> None:
    result = cookies.bake(
        extra_context={**options, "python_version": "3.13" if options["signed_sessions"] else "3.10"}
    )
    assert result.exit_code == 0, result.exception
    project = Path(result.project_path)
    assert rendered_files(project) == expected_files(options, "bokeh_dashboard")
    for path in project.rglob("*"):
        if path.is_file() and path.suffix not in BINARY_SUFFIXES and path.name != ".cookiecutter-replay.json":
            text = path.read_text(encoding="utf-8")
            if path.relative_to(project).parts[0] == ".github":
                text = text.replace("${{", "$")  # GitHub Actions expressions, written in {% raw %}
            assert not LEFTOVER.search(text), f"template leftover in {path.relative_to(project)}"
    answers = dict(result.context)
    problems = rendered_checks.project_problems(project, answers)
    assert problems + rendered_checks.check_answers_file(project, answers) == []


def test_default_bake_is_ruff_clean(default_project: Path) -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    subprocess.run([ruff, "check", "--no-cache", "."], cwd=default_project, check=True)
    subprocess.run([ruff, "format", "--check", "--no-cache", "."], cwd=default_project, check=True)


def test_bake_with_a_late_sorting_package_name_is_ruff_clean(cookies) -> None:
    """Import sorting must not depend on where the package name sorts ("zeta_board" after "servers")."""
    result = cookies.bake(extra_context={"project_name": "Zeta Board"})
    assert result.exit_code == 0, result.exception
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    subprocess.run([ruff, "check", "--no-cache", "."], cwd=result.project_path, check=True)
    subprocess.run([ruff, "format", "--check", "--no-cache", "."], cwd=result.project_path, check=True)


def test_default_bake_passes_pre_commit(default_project: Path, tmp_path: Path) -> None:
    project = tmp_path / default_project.name
    shutil.copytree(default_project, project)
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    pre_commit = shutil.which("pre-commit") or str(Path(sys.executable).with_name("pre-commit"))
    subprocess.run([pre_commit, "run", "--all-files", "--show-diff-on-failure"], cwd=project, check=True)


def test_rendered_project_suite_passes(project_python: Path, default_project: Path) -> None:
    """The baked project's own pytest (real servers, leak tests, negative controls) passes."""
    completed = subprocess.run(
        [str(project_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-s"],
        cwd=default_project,
        capture_output=True,
        text=True,
        timeout=600,
    )
    tail = "\n".join(completed.stdout.splitlines()[-40:])
    print(tail)
    assert completed.returncode == 0, tail + completed.stderr[-3000:]
    passed = re.search(r"\b(\d+) passed\b", completed.stdout)
    assert passed and int(passed.group(1)) >= 13, tail


@pytest.mark.parametrize(("name", "slug"), NAMES_THAT_BAKE)
def test_projects_named_by_hostile_names_pass_their_smoke_tests(
    cookies, project_python: Path, name: str, slug: str
) -> None:
    """Baked from ``project_name`` alone, each project installs beside the default one and its own
    smoke tests (a real server, a page, a websocket session, the slider callback) pass."""
    result = cookies.bake(extra_context={"project_name": name})
    assert result.exit_code == 0, result.exception
    project = Path(result.project_path)
    assert project.name == slug
    pip = [str(project_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([*pip, "-e", str(project)], check=True, timeout=300)
    completed = subprocess.run(
        [str(project_python), "-m", "pytest", "tests/test_smoke.py", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert re.search(r"\b3 passed\b", completed.stdout), completed.stdout[-2000:]


def test_rendered_project_suite_passes_on_an_unverified_bokeh(
    project_python: Path, default_project: Path, request: pytest.FixtureRequest
) -> None:
    """The same suite with the runtime seeing Bokeh 3.11.0 (``<pkg>_devtools/pretend_bokeh``; Bokeh
    itself untouched): it passes, the tests of the pieces that are then off skip with the reason.
    Once, with the newest interpreter (the suite takes about a minute)."""
    newest = interpreters()[-1]
    if request.node.callspec.params["project_python"] != newest:
        pytest.skip(f"runs once, with {newest}")
    site = default_project / "src" / "bokeh_dashboard_devtools" / "pretend_bokeh"
    env = {**os.environ, "PRETEND_BOKEH_VERSION": "3.11.0", "PYTHONPATH": str(site)}
    completed = subprocess.run(
        [str(project_python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=default_project, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    tail = "\n".join(completed.stdout.splitlines()[-40:])
    print(tail)
    assert completed.returncode == 0, tail + completed.stderr[-3000:]
    assert "stall_free is off: Bokeh 3.11.0 is not a verified version" in completed.stdout, tail
    assert "session_gate is off" in completed.stdout and " passed" in completed.stdout, tail


def test_rendered_project_manifest_tests_pass(
    project_python: Path, default_project: Path, request: pytest.FixtureRequest
) -> None:
    """The baked project's ``-m manifests`` lane (its CI job): kustomize renders k8s/, every resource
    validates against the Kubernetes schemas, and the broken-Deployment control is refused. Once,
    with the newest interpreter (the schemas are about 100 MB to install)."""
    newest = interpreters()[-1]
    if request.node.callspec.params["project_python"] != newest:
        pytest.skip(f"runs once, with {newest}")
    if not (shutil.which("kustomize") or shutil.which("kubectl")):
        pytest.skip("neither kustomize nor kubectl is on PATH")
    pip = [str(project_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", f"{default_project}[manifests]"], check=True, timeout=600)
    stdout = run_marked_tests(project_python, default_project, "manifests", timeout=300)
    assert re.search(r"\b1 passed\b", stdout), stdout[-2000:]


def test_rendered_project_browser_tests_pass(project_python: Path, default_project: Path) -> None:
    """The baked project's real-browser tests pass: its ``browser`` extra drives the system Chromium."""
    chromium = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        reason = f"no Chromium at {chromium} (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests", pytrace=False)
        pytest.skip(reason)
    pip = [str(project_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", f"{default_project}[browser]"], check=True, timeout=600)
    completed = subprocess.run(
        [str(project_python), "-m", "pytest", "-m", "browser", "-q", "-p", "no:cacheprovider", "-s"],
        cwd=default_project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "REQUIRE_BROWSER_TESTS": "1", "CHROMIUM_PATH": chromium},
    )
    tail = "\n".join(completed.stdout.splitlines()[-40:])
    print(tail)
    assert completed.returncode == 0, tail + completed.stderr[-3000:]
    passed = re.search(r"\b(\d+) passed\b", completed.stdout)
    assert passed and int(passed.group(1)) >= 3, tail
    # The login test needs oidc-provider-mock, which needs Python 3.12: there it must have run.
    version = subprocess.run(
        [str(project_python), "-c", "import sys; print(sys.version_info >= (3, 12))"],
        capture_output=True,
        text=True,
        check=True,
    )
    if version.stdout.strip() == "True":
        assert " skipped" not in completed.stdout, tail


def run_marked_tests(project_python: Path, project: Path, marker: str, timeout: float) -> str:
    """Run the baked project's tests marked ``marker`` (deselected by its default addopts)."""
    completed = subprocess.run(
        [str(project_python), "-m", "pytest", "-m", marker, "-q", "-p", "no:cacheprovider", "-s"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    tail = "\n".join(completed.stdout.splitlines()[-40:])
    print(tail)
    assert completed.returncode == 0, tail + completed.stderr[-3000:]
    return completed.stdout


def test_rendered_project_benchmark_smoke_tests_pass(project_python: Path, default_project: Path) -> None:
    """The baked project's benchmark scripts run end to end (tiny sizes) and write their reports."""
    stdout = run_marked_tests(project_python, default_project, "benchmark", timeout=300)
    passed = re.search(r"\b(\d+) passed\b", stdout)
    assert passed and int(passed.group(1)) >= 6 and " failed" not in stdout, stdout[-2000:]


@pytest.mark.timeout(1800)
def test_rendered_project_soak_passes(
    project_python: Path, default_project: Path, request: pytest.FixtureRequest
) -> None:
    """1300 sessions through 50 clients: no session left, every cleanup once, RSS slope <= 1 KB per
    session; and the 4 KB-per-session leak control breaks that bound. About 6 minutes, so it runs
    with the newest interpreter only (the last of ``interpreters()``)."""
    newest = interpreters()[-1]
    if request.node.callspec.params["project_python"] != newest:
        pytest.skip(f"the soak runs once, with {newest}")
    stdout = run_marked_tests(project_python, default_project, "soak", timeout=1800)
    assert re.search(r"\b2 passed\b", stdout), stdout[-2000:]
    assert "soak app:" in stdout and "soak slow leak:" in stdout


def test_rendered_project_memory_limit_tests_pass(project_python: Path, default_project: Path) -> None:
    """Crowds in a real kernel memory limit: bare Bokeh is OOM-killed, the project is not. Needs
    root and a memory cgroup: the rendered tests skip without (and fail under CI=true)."""
    stdout = run_marked_tests(project_python, default_project, "memory_limit", timeout=600)
    if re.search(r"\b2 skipped\b", stdout) and not os.environ.get("CI"):
        pytest.skip("no memory cgroup can be made here (the rendered tests say why)")
    assert re.search(r"\b2 passed\b", stdout), stdout[-2000:]


def test_cli_serves_the_app_with_answered_defaults(project_python: Path) -> None:
    """``python -m bokeh_dashboard serve --help`` keeps every bokeh serve flag."""
    completed = subprocess.run(
        [str(project_python), "-m", "bokeh_dashboard", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for flag in (
        "--unused-session-lifetime",
        "--check-unused-sessions",
        "--allow-websocket-origin",
        "--num-procs",
    ):
        assert flag in completed.stdout


def test_template_code_is_ruff_clean() -> None:
    """The template's own Python (hooks, extensions, tests) follows the same rules as the project."""
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    root = Path(__file__).resolve().parent.parent
    targets = ["hooks", "tests", "local_extensions.py"]
    subprocess.run([ruff, "check", "--no-cache", *targets], cwd=root, check=True)
    subprocess.run([ruff, "format", "--check", "--no-cache", *targets], cwd=root, check=True)
