"""The rooms of the package: the runtime never imports the app, nothing that ships imports the dev tools.

``pyproject.toml`` states the rules as import-linter contracts; ``lint-imports`` builds the real
import graph (grimp) of ``src/``. How we know the check can fail: the same contracts run on a copy
of ``src/`` in which one runtime module imports the app (or the app imports the dev tools) must
report that contract broken.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.server.settings import PACKAGE

PROJECT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
RUNTIME_RULE = "The runtime (server) never imports the app"
DEVTOOLS_RULE = "Nothing that ships imports the dev tools"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` in ``project`` (its pyproject.toml), on the packages under ``project/src``."""
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],  # reads ./pyproject.toml
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_with_import(tmp_path: Path, module: str, line: str) -> Path:
    """A copy of the project's src/ and pyproject.toml where ``module`` (path under src/) gains ``line``."""
    copy = tmp_path / "project"
    shutil.copytree(PROJECT / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT / "pyproject.toml", copy / "pyproject.toml")
    target = copy / "src" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    return copy


def test_the_import_contracts_hold() -> None:
    result = lint_imports(PROJECT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{RUNTIME_RULE} KEPT" in result.stdout and f"{DEVTOOLS_RULE} KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "rule"),
    [
        (f"{PACKAGE}/server/guard.py", f"from {PACKAGE}.app import data  # noqa", RUNTIME_RULE),
        (f"{PACKAGE}/server/lifecycle.py", "from ..app import shared  # noqa", RUNTIME_RULE),
        (f"{PACKAGE}/app/data.py", f"import {PACKAGE}_devtools.polling  # noqa", DEVTOOLS_RULE),
    ],
    ids=["server-imports-app", "relative-import", "app-imports-devtools"],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, rule: str) -> None:
    """Negative control: the contracts above catch a real import across the line."""
    result = lint_imports(copy_with_import(tmp_path, module, line))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{rule} BROKEN" in result.stdout, result.stdout


def test_the_app_api_is_importable_from_the_package_top() -> None:
    from {{ cookiecutter.package_name }} import on_every_session_end, on_session_end, per_process, session_locals

    assert all(callable(name) for name in (on_every_session_end, on_session_end, per_process, session_locals))
    assert all(hasattr(package, name) for name in package.__all__)


def test_the_package_name_comes_from_the_import_name() -> None:
    assert package.__name__ == PACKAGE
