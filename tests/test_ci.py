"""The baked project's own CI: lint-clean for every option set, the README's commands and nothing
else, and a dependency-update config that reaches every pinned version.

``actionlint`` (workflow syntax, expressions, contexts, job references, action inputs) and the
SchemaStore schemas (``check-jsonschema``: workflow, Renovate config) run offline on every
combination of ``python_version`` and ``include_kubernetes`` (the answers the workflow renders);
each has a negative control on a broken copy. Every ``run:`` line of the workflow must be a
command line of the README, and the README's "CI" section must list exactly the workflow's lines,
so a user can rerun any failed job step locally.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

TEMPLATE = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORKFLOW = ".github/workflows/ci.yml"
RENOVATE = ".github/renovate.json"
MATRIX = [
    {"python_version": python, "include_kubernetes": k8s}
    for python, k8s in itertools.product(("3.10", "3.11", "3.12", "3.13"), (True, False))
]
FENCE = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def option_id(options: dict[str, Any]) -> str:
    return f"py{options['python_version']}-{'k8s' if options['include_kubernetes'] else 'no-k8s'}"


def bake(cookies, **options: Any) -> Path:
    result = cookies.bake(extra_context=options)
    assert result.exit_code == 0, result.exception
    return Path(result.project_path)


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "actionlint"), "-no-color", str(path)], capture_output=True, text=True)


def schema_check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)]
    return subprocess.run(command, capture_output=True, text=True)


def workflow_commands(project: Path) -> list[str]:
    """Every line of every ``run:`` step, in order."""
    workflow = yaml.safe_load((project / WORKFLOW).read_text(encoding="utf-8"))
    return [
        line.strip()
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "run" in step
        for line in step["run"].splitlines()
        if line.strip()
    ]


def readme_commands(text: str) -> list[str]:
    """Command lines of the README's ``bash`` blocks, without comments."""
    lines = (line.split("  #")[0].strip() for block in FENCE.findall(text) for line in block.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def readme_section(text: str, title: str) -> str:
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("options", MATRIX, ids=option_id)
def test_the_workflow_is_lint_clean_and_runs_the_readme_commands(cookies, options: dict[str, Any]) -> None:
    project = bake(cookies, **options)
    linted = actionlint(project / WORKFLOW)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    checked = schema_check("vendor.github-workflows", project / WORKFLOW)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    workflow = yaml.safe_load((project / WORKFLOW).read_text(encoding="utf-8"))
    assert workflow["env"]["UV_PYTHON"] == options["python_version"]
    assert ("manifests" in workflow["jobs"]) == options["include_kubernetes"]

    readme = (project / "README.md").read_text(encoding="utf-8")
    commands = workflow_commands(project)
    assert [line for line in commands if line not in readme_commands(readme)] == []
    ci_section = readme_commands(readme_section(readme, "CI"))
    assert set(ci_section) == set(commands), set(ci_section) ^ set(commands)


def test_actionlint_and_the_schema_fail_on_a_broken_workflow(default_project: Path, tmp_path: Path) -> None:
    """Negative controls: a misspelled context, a job that needs a missing job, an unknown key."""
    text = (default_project / WORKFLOW).read_text(encoding="utf-8")
    assert actionlint(default_project / WORKFLOW).returncode == 0  # the control's control
    for broken in (
        text.replace("github.event_name != 'schedule'", "github.event_nme != 'schedule'", 1),
        text.replace("    timeout-minutes: 20\n", "    timeout-minutes: 20\n    needs: [no-such-job]\n", 1),
    ):
        path = tmp_path / "ci.yml"
        path.write_text(broken, encoding="utf-8")
        assert actionlint(path).returncode != 0, broken
    path.write_text(text.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1), encoding="utf-8")
    assert schema_check("vendor.github-workflows", path).returncode != 0


def renovate_patterns(project: Path) -> list[tuple[re.Pattern[str], list[str]]]:
    """Renovate's custom regex managers as Python patterns, with the file patterns they apply to."""
    config = json.loads((project / RENOVATE).read_text(encoding="utf-8"))
    managers = []
    for manager in config["customManagers"]:
        files = [pattern.strip("/") for pattern in manager["managerFilePatterns"]]
        for match in manager["matchStrings"]:
            managers.append((re.compile(match.replace("(?<", "(?P<")), files))
    return managers


def pinned_versions(project: Path, relative: str) -> list[tuple[str, str]]:
    """(name, version) Renovate's regex managers find in ``relative``."""
    text = (project / relative).read_text(encoding="utf-8")
    found = []
    for pattern, files in renovate_patterns(project):
        if any(re.search(file_pattern.replace("\\/", "/"), relative) for file_pattern in files):
            found += [(match["depName"], match["currentValue"]) for match in pattern.finditer(text)]
    return found


def test_renovate_reaches_every_pinned_tool(default_project: Path, tmp_path: Path) -> None:
    """The config is valid, its regex managers find every pinned hook tool and uv, and uv is one
    version everywhere (the template's tests use the same uv as the project's CI and image)."""
    checked = schema_check("vendor.renovate", default_project / RENOVATE)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    hooks = yaml.safe_load((default_project / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    dependencies = {
        dependency for repo in hooks["repos"] for hook in repo["hooks"] for dependency in hook.get(
            "additional_dependencies", []
        )
    }  # fmt: skip
    assert dependencies and all("==" in dependency for dependency in dependencies), dependencies
    found = pinned_versions(default_project, ".pre-commit-config.yaml")
    assert {f"{name}=={version}" for name, version in found} == dependencies
    uv_pins = {
        version
        for relative in ("Dockerfile", WORKFLOW)
        for name, version in pinned_versions(default_project, relative)
        if name == "uv"
    }
    template_uv = re.search(r"^uv==(\S+)$", (TEMPLATE / "requirements-dev.txt").read_text(), re.MULTILINE)
    assert template_uv and uv_pins == {template_uv[1]}, (uv_pins, template_uv)
    # Control: the schema refuses a value of the wrong kind (it allows unknown keys).
    config = json.loads((default_project / RENOVATE).read_text(encoding="utf-8"))
    config["customManagers"][0]["customType"] = "regexp"
    broken = tmp_path / "renovate.json"
    broken.write_text(json.dumps(config), encoding="utf-8")
    assert schema_check("vendor.renovate", broken).returncode != 0
