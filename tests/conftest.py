"""Shared fixtures: one baked default project and one venv with it installed, reused by the session."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TEMPLATE_DIR = Path(__file__).resolve().parent.parent


def interpreters() -> list[str]:
    """Pythons to run the rendered project's suite with: this one, plus TEMPLATE_TEST_PYTHONS."""
    extra = [path for path in os.environ.get("TEMPLATE_TEST_PYTHONS", "").split(os.pathsep) if path]
    return [sys.executable, *extra]


@pytest.fixture(scope="session")
def default_project(cookies_session) -> Path:
    """The default answers, baked once."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    return Path(result.project_path)


def make_project_venv(project: Path, python: str, where: Path) -> Path:
    """A venv for ``python`` with ``project[dev]`` installed; returns its python."""
    subprocess.run([python, "-m", "venv", str(where)], check=True)
    env_python = where / "bin" / "python"
    subprocess.run(
        [
            str(env_python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{project}[dev]",
        ],
        check=True,
    )
    return env_python


@pytest.fixture(scope="session", params=interpreters(), ids=lambda path: Path(path).name)
def project_python(request, default_project: Path, tmp_path_factory) -> Iterator[Path]:
    """The python of a venv holding the default project, installed once per interpreter."""
    yield make_project_venv(default_project, request.param, tmp_path_factory.mktemp("venv"))
