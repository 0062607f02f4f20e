"""The baked project's lock (``uv.lock``): it matches ``pyproject.toml``, covers every Python the
``python_version`` prompt offers with a verified Bokeh, installs hash-checked the way the image and
the CI install it, and a dependency changed without relocking is caught.

The lock is one template file whose only Jinja is the project's name (``scripts/relock.sh``
regenerates it). Each check can fail: a stale lock fails ``uv lock --check`` (negative control:
the same check on a baked project whose ``pyproject.toml`` gained a dependency, or a narrower Bokeh
range), a tampered hash fails ``pip --require-hashes`` (control in the same test).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

TEMPLATE = Path(__file__).resolve().parent.parent
UV = str(Path(sys.executable).with_name("uv"))
PYTHON_CHOICES = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))["python_version"]
#: Bokeh (major, minor) versions the runtime was verified on (server/patches.py, VERIFIED_BOKEH).
VERIFIED_BOKEH = {(3, 8), (3, 9), (3, 10)}
STALE = "needs to be updated"
#: pip as in the image: no machine-wide config (find-links, constraints) of the baking machine.
CLEAN_PIP_ENV = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def run(
    *command: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def exported_requirements(project: Path) -> list[Requirement]:
    """What ``uv export --locked`` (the Dockerfile's command) pins, with its markers."""
    completed = run(
        UV, "export", "--locked", "--offline", "--no-emit-project", "--no-hashes", "-q", cwd=project
    )
    assert completed.returncode == 0, completed.stderr
    lines = [line.strip() for line in completed.stdout.splitlines()]
    return [Requirement(line) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("project_name", ["Bokeh Dashboard", "Zeta Board"])
def test_the_lock_matches_pyproject(cookies, project_name: str) -> None:
    """The name is the lock's one rendered value; "Zeta Board" sorts after every package in it."""
    result = cookies.bake(extra_context={"project_name": project_name})
    assert result.exit_code == 0, result.exception
    project = Path(result.project_path)
    assert f'name = "{result.context["project_slug"]}"' in (project / "uv.lock").read_text(encoding="utf-8")
    completed = run(UV, "lock", "--check", "--offline", cwd=project)
    assert completed.returncode == 0, completed.stderr


def test_the_lock_gives_every_python_choice_one_verified_bokeh(default_project: Path) -> None:
    requirements = exported_requirements(default_project)
    for python in PYTHON_CHOICES:
        environment = {
            "python_version": python,
            "python_full_version": f"{python}.0",
            "sys_platform": "linux",
        }
        chosen = [req for req in requirements if req.marker is None or req.marker.evaluate(environment)]
        names = [req.name for req in chosen]
        assert len(names) == len(set(names)), f"Python {python}: a package pinned twice: {names}"
        (bokeh,) = [req for req in chosen if req.name == "bokeh"]
        (pin,) = bokeh.specifier
        major, minor, *_ = (int(part) for part in pin.version.split("."))
        assert pin.operator == "==" and (major, minor) in VERIFIED_BOKEH, f"Python {python}: {bokeh}"
        assert {"numpy", "prometheus-client", "psutil", "tornado"} <= set(names), (python, names)
    assert not Marker("python_version < '3.10'").evaluate({"python_version": min(PYTHON_CHOICES)})


@pytest.mark.parametrize(
    ("change", "replacement"),
    [
        ('    "psutil>=5.9",\n', '    "psutil>=5.9",\n    "requests>=2",\n'),
        ('"bokeh>=3.8.2,<3.11"', '"bokeh>=3.8.2,<3.10"'),
    ],
    ids=["added-dependency", "narrowed-bokeh"],
)
def test_a_dependency_changed_without_relocking_is_caught(
    default_project: Path, tmp_path: Path, change: str, replacement: str
) -> None:
    """Negative control of the test above: every command that uses the lock refuses a stale one."""
    project = tmp_path / "project"
    subprocess.run(["cp", "-r", str(default_project), str(project)], check=True)
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    assert change in text
    pyproject.write_text(text.replace(change, replacement), encoding="utf-8")
    for command in (
        ("lock", "--check"),  # CI's lint job
        ("sync", "--locked", "--extra", "dev", "--dry-run"),  # README and CI installs
        ("export", "--locked", "--no-emit-project"),  # the Dockerfile
    ):
        completed = run(UV, *command, cwd=project)
        assert completed.returncode != 0 and STALE in completed.stderr, (command, completed.stderr)


def tamper_bokeh_hashes(text: str) -> str:
    """Every hash of every pinned Bokeh replaced by zeros (any one matching hash would let a file in)."""
    lines, in_bokeh = [], False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_bokeh = line.startswith("bokeh==")
        elif in_bokeh:
            line = re.sub(r"sha256:[0-9a-f]{64}", "sha256:" + "0" * 64, line)
        lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(900)
def test_the_lock_installs_hash_checked_as_the_image_and_ci_do(default_project: Path, tmp_path: Path) -> None:
    """The Dockerfile's build stage, run here: ``uv export --locked`` then ``pip wheel --require-hashes``
    and an install of exactly those wheels (``--no-index --no-deps``), which then runs every runtime
    piece on its verified Bokeh; a tampered hash is refused. Then CI's ``uv sync --frozen``, and the
    same again ``--offline`` from uv's cache only: the lock needs no resolution, only files."""
    requirements = tmp_path / "requirements.txt"
    exported = run(UV, "export", "--locked", "--no-emit-project", "--output-file", str(requirements), "-q",
                   cwd=default_project)  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    wheels = tmp_path / "wheels"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels)]
    built = run(*pip_wheel, "--require-hashes", "-r", str(requirements), env=CLEAN_PIP_ENV)
    assert built.returncode == 0, built.stderr[-3000:]
    assert run(*pip_wheel, str(default_project), env=CLEAN_PIP_ENV).returncode == 0
    image = tmp_path / "image"
    run(sys.executable, "-m", "venv", str(image))
    wheel_files = sorted(str(path) for path in wheels.glob("*.whl"))
    installed = run(str(image / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                    *wheel_files, env=CLEAN_PIP_ENV)  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    report = run(str(image / "bin" / "python"), "-m", "bokeh_dashboard", "patches")
    assert report.returncode == 0 and "verified" in report.stdout, report.stdout + report.stderr

    # Control: one changed hash and pip refuses the file.
    requirements.write_text(tamper_bokeh_hashes(requirements.read_text(encoding="utf-8")), encoding="utf-8")
    refused = run(*pip_wheel[:-1], str(tmp_path / "again"), "--no-cache-dir", "--require-hashes",
                  "-r", str(requirements), env=CLEAN_PIP_ENV)  # fmt: skip
    assert refused.returncode != 0 and "HASHES" in refused.stderr.upper(), refused.stderr[-3000:]

    for name, offline in (("online", ()), ("offline", ("--offline",))):
        env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / f"venv-{name}")}
        synced = run(UV, "sync", "--frozen", "--extra", "dev", "--python", sys.executable, *offline,
                     cwd=default_project, env=env)  # fmt: skip
        assert synced.returncode == 0, synced.stderr[-3000:]
        python = tmp_path / f"venv-{name}" / "bin" / "python"
        assert run(str(python), "-m", "bokeh_dashboard", "patches").returncode == 0
