"""No secret in git, and alert rules that fire when they should: the parts of the edge that are not manifests.

Secrets: for every answer set that generates one, a fresh bake put under git as a new user would
(``git init && git add -A``) tracks no file that holds a generated value, and ``k8s/secrets.env``
is ignored; the control removes its ``.gitignore`` line and the same check reports the file.

Alert rules (``k8s/monitoring/prometheusrule.yaml``): ``promtool check rules`` accepts them, and
``promtool test rules`` runs a unit test built here: two pods, one healthy and one in each failure
mode, and each alert must fire for the failing pod and stay silent for the healthy one (promtool
compares the exact set of firing alerts, so an alert that never fires, or fires for the healthy
pod, fails). promtool comes from Debian's ``prometheus`` package; without it the tests skip, and
under CI they fail. That every metric the rules name exists on a running server is checked by
the rendered project (tests/test_monitoring.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import rendered_checks
import yaml

SIGNED_ANSWERS = [
    {"signed_sessions": True},
    {"signed_sessions": True, "auth": "oidc"},
    {"signed_sessions": True, "auth": "oidc", "edge": "ingress-nginx", "include_nginx": False},
]


def bake(cookies: Any, options: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    result = cookies.bake(extra_context=options)
    assert result.exit_code == 0, result.exception
    return Path(result.project_path), dict(result.context)


def git(project: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return completed.stdout


def tracked_secrets(project: Path) -> list[str]:
    """``git init && git add -A`` in ``project``; the tracked files that hold a generated secret."""
    git(project, "init", "-q")
    git(project, "add", "-A")
    values = rendered_checks.env_file_values((project / "k8s" / "secrets.env").read_text(encoding="utf-8"))
    generated = [value for value in values.values() if len(value) >= rendered_checks.MIN_SECRET_KEY_LENGTH]
    assert generated, "the bake generated no secret"
    found = []
    for name in git(project, "ls-files", "-z").split("\0"):
        if name and any(
            value in (project / name).read_text(encoding="utf-8", errors="replace") for value in generated
        ):
            found.append(name)
    return found


@pytest.mark.parametrize("options", SIGNED_ANSWERS, ids=lambda options: "-".join(map(str, options.values())))
def test_a_fresh_repository_tracks_no_secret(cookies: Any, options: dict[str, Any]) -> None:
    project, _answers = bake(cookies, options)
    assert tracked_secrets(project) == []
    assert git(project, "check-ignore", "k8s/secrets.env").strip() == "k8s/secrets.env"


def test_without_the_ignore_line_the_secret_is_tracked(cookies: Any) -> None:
    """Negative control: the check above does see a secret that git would track."""
    project, _answers = bake(cookies, {"signed_sessions": True})
    gitignore = project / ".gitignore"
    lines = gitignore.read_text(encoding="utf-8").splitlines()
    gitignore.write_text(
        "\n".join(line for line in lines if line != "k8s/secrets.env") + "\n", encoding="utf-8"
    )
    assert tracked_secrets(project) == ["k8s/secrets.env"]


# ---------------------------------------------------------------------------------------------
# Alert rules
# ---------------------------------------------------------------------------------------------


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing (apt-get install prometheus); CI must check the alert rules")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return found


@pytest.fixture(scope="module")
def rules(cookies_session: Any) -> dict[str, Any]:
    """The PrometheusRule of a default bake."""
    project, _answers = bake(cookies_session, {})
    return yaml.safe_load(
        (project / "k8s" / "monitoring" / "prometheusrule.yaml").read_text(encoding="utf-8")
    )


def series(name: str, pod: str, values: str, **labels: str) -> dict[str, str]:
    label_text = ",".join(
        f'{key}="{value}"' for key, value in {"namespace": "web", "pod": pod, **labels}.items()
    )
    return {"series": f"{name}{{{label_text}}}", "values": values}


#: Per alert: the input series of a failing pod ("bad") and a healthy one ("good"), when to look
#: (minutes), and which labels of the series the alert keeps.
CASES: dict[str, dict[str, Any]] = {
    "BokehMemoryNearLimit": {
        "series": [
            series("bokeh_process_rss_bytes", "bad", "900x30"),
            series("bokeh_memory_soft_limit_bytes", "bad", "800x30"),
            series("bokeh_process_rss_bytes", "good", "700x30"),
            series("bokeh_memory_soft_limit_bytes", "good", "800x30"),
        ],
        "at": 15,
    },
    "BokehAdmissionLimitReached": {
        "series": [
            series("bokeh_process_rss_bytes", "bad", "950x30"),
            series("bokeh_admission_limit_bytes", "bad", "900x30"),
            series("bokeh_process_rss_bytes", "good", "850x30"),
            series("bokeh_admission_limit_bytes", "good", "900x30"),
        ],
        "at": 5,
    },
    "BokehSessionsRefused": {
        "series": [
            series("bokeh_sessions_refused_total", "bad", "0x5 1+2x10", kind="page", reason="memory"),
            series("bokeh_sessions_refused_total", "good", "0x20", kind="page", reason="memory"),
        ],
        "at": 10,
        "labels": ("namespace", "pod"),
    },
    "BokehEventLoopStalled": {
        "series": [
            series("bokeh_event_loop_lag_seconds", "bad", "2.5x20"),
            series("bokeh_event_loop_lag_seconds", "good", "0.05x20"),
        ],
        "at": 5,
    },
    "BokehSessionCleanupFailures": {
        "series": [
            series("bokeh_session_cleanup_failures_total", "bad", "0x5 1x10"),
            series("bokeh_session_cleanup_failures_total", "good", "0x15"),
        ],
        "at": 10,
    },
    "BokehSessionsNeverConnect": {
        "series": [
            series("bokeh_sessions_created_total", "bad", "0+10x60"),
            series("bokeh_sessions_unconnected_discarded_total", "bad", "0+5x60"),
            series("bokeh_sessions_created_total", "good", "0+10x60"),
            series("bokeh_sessions_unconnected_discarded_total", "good", "0+0.2x60"),
        ],
        "at": 40,
    },
}


def unit_tests(rules: dict[str, Any], rule_file: str) -> dict[str, Any]:
    """A promtool unit-test file: per alert, only the failing pod's alert is expected."""
    by_name = {rule["alert"]: rule for group in rules["spec"]["groups"] for rule in group["rules"]}
    assert set(by_name) == set(CASES), "every alert needs a case (and every case an alert)"
    tests = []
    for name, case in CASES.items():
        rule = by_name[name]
        first = case["series"][0]["series"]
        labels = dict(item.split("=") for item in first[first.index("{") + 1 : -1].split(","))
        labels = {key: value.strip('"') for key, value in labels.items()}
        kept = {key: labels[key] for key in case.get("labels", labels)}
        expected = {"exp_labels": {**kept, **rule.get("labels", {})}, "exp_annotations": rule["annotations"]}
        tests.append(
            {
                "interval": "1m",
                "input_series": case["series"],
                "alert_rule_test": [
                    {"eval_time": f"{case['at']}m", "alertname": name, "exp_alerts": [expected]}
                ],
            }
        )
    return {"rule_files": [rule_file], "evaluation_interval": "1m", "tests": tests}


def write_rules(rules: dict[str, Any], folder: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rules file."""
    path = folder / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rules["spec"]["groups"]}, sort_keys=False), encoding="utf-8")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rules(rules: dict[str, Any], tmp_path: Path) -> None:
    checked = run_promtool("check", "rules", str(write_rules(rules, tmp_path)))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(CASES)} rules found" in checked.stdout, checked.stdout


def test_each_alert_fires_for_the_failing_pod_only(rules: dict[str, Any], tmp_path: Path) -> None:
    write_rules(rules, tmp_path)
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(unit_tests(rules, "rules.yaml"), sort_keys=False), encoding="utf-8")
    tested = run_promtool("test", "rules", str(tests))
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.parametrize("broken", ["syntax", "healthy-pod-alerts", "never-fires"])
def test_promtool_catches_broken_rules(rules: dict[str, Any], tmp_path: Path, broken: str) -> None:
    """Negative controls: a PromQL syntax error, a rule that fires for the healthy pod too and one
    that never fires each make promtool fail."""
    broken_rules = yaml.safe_load(yaml.safe_dump(rules))
    first = broken_rules["spec"]["groups"][0]["rules"][0]  # BokehMemoryNearLimit
    if broken == "syntax":
        first["expr"] = "bokeh_process_rss_bytes > > 1"
    elif broken == "healthy-pod-alerts":
        first["expr"] = "bokeh_process_rss_bytes > 0.5 * bokeh_memory_soft_limit_bytes"
    else:
        first["expr"] = "bokeh_process_rss_bytes > 2 * bokeh_memory_soft_limit_bytes"
    write_rules(broken_rules, tmp_path)
    if broken == "syntax":
        result = run_promtool("check", "rules", str(tmp_path / "rules.yaml"))
    else:
        tests = tmp_path / "tests.yaml"
        tests.write_text(yaml.safe_dump(unit_tests(rules, "rules.yaml"), sort_keys=False), encoding="utf-8")
        result = run_promtool("test", "rules", str(tests))
    assert result.returncode != 0, result.stdout
