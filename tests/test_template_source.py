"""The template's own source: Jinja only where it belongs, and the runtime identical in every bake.

The rules (DEVELOPERS.md, issue #10): answers reach Python through one rendered data file
(``server/answers.json``) read by a plain settings module; no Python module depends on Jinja
except in its import lines; the runtime (``server/*.py``) is copied unrendered, so ``cruft
update`` replaces it without a conflict and no brace in it can be eaten by Jinja.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parent.parent
PROJECT_TEMPLATE = TEMPLATE / "{{cookiecutter.project_slug}}"
RUNTIME = PROJECT_TEMPLATE / "src" / "{{cookiecutter.package_name}}" / "server"
EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
SET_NAME = re.compile(r"\{%-?\s*set\s+(\w+)")
STATEMENT = re.compile(r"\{%-?\s*(\w+)")
ALLOWED_STATEMENTS = {"if", "elif", "else", "endif", "for", "endfor", "raw", "endraw", "set"}
#: ``{% raw %}...{% endraw %}``: copied as is (GitHub Actions' ``${{ ... }}`` in workflow files).
RAW_BLOCK = re.compile(r"\{%-?\s*raw\s*-?%\}.*?\{%-?\s*endraw\s*-?%\}", re.DOTALL)
IMPORT_LINE = re.compile(r"^\s*(from\s+\S+\s+import\b|import\s+\S+)")


def template_text_files() -> list[Path]:
    return [
        path
        for path in sorted(PROJECT_TEMPLATE.rglob("*"))
        if path.is_file() and path.suffix not in {".png"} and "__pycache__" not in path.parts
    ]


def test_every_jinja_expression_uses_the_answers() -> None:
    """A ``{{ ... }}`` that names no answer (nor a ``{% set %}`` variable of its file) is a brace
    Jinja would eat (an f-string's ``{{x}}``, a shell ``${{ }}``); ``{% ... %}`` must be known."""
    problems = []
    for path in template_text_files():
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(TEMPLATE)
        names = {"cookiecutter", *SET_NAME.findall(text)}
        for match in EXPRESSION.finditer(RAW_BLOCK.sub("", text)):
            if not names & set(re.findall(r"[A-Za-z_]\w*", match[1])):
                problems.append(f"{rel}: {match[0]!r}")
        for match in STATEMENT.finditer(text):
            if match[1] not in ALLOWED_STATEMENTS:
                problems.append(f"{rel}: {{% {match[1]} %}}")
        if "{" + "#" in text:
            problems.append(f"{rel}: Jinja comment opener")
    assert problems == []


def test_python_modules_use_jinja_only_in_import_lines() -> None:
    problems = []
    for path in PROJECT_TEMPLATE.rglob("*.py"):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            jinja_free = EXPRESSION.sub("package", line)
            if ("{" + "{" in line or "{" + "%" in line) and not IMPORT_LINE.match(jinja_free):
                problems.append(f"{path.relative_to(TEMPLATE)}:{number}: {line.strip()}")
    assert problems == []


def test_the_runtime_is_copied_unrendered() -> None:
    context = json.loads((TEMPLATE / "cookiecutter.json").read_text(encoding="utf-8"))
    pattern = "{{cookiecutter.project_slug}}/src/{{cookiecutter.package_name}}/server/*.py"
    assert pattern in context["_copy_without_render"]
    assert sorted(RUNTIME.glob("*.py")), "the runtime package moved: update the pattern"
    markers = ("{" + "{", "{" + "%", "{" + "#")
    assert not [path.name for path in RUNTIME.glob("*.py") if any(m in path.read_text() for m in markers)]


def test_runtime_modules_are_byte_identical_for_different_answers(cookies) -> None:
    """``settings.py`` and every other runtime module: the same bytes for two answer sets, and the
    template's own bytes; the answers differ only in ``server/answers.json``."""
    first = cookies.bake()
    second = cookies.bake(
        extra_context={
            "project_name": "Zeta Board",
            "port": 7001,
            "allowed_origins": "zeta.example.com",
            "unused_session_lifetime_ms": 1234,
            "check_unused_sessions_ms": 1000,
            "memory_limit": "2Gi",
        }
    )
    assert first.exit_code == 0 and second.exit_code == 0, (first.exception, second.exception)
    first_runtime = Path(first.project_path) / "src" / "bokeh_dashboard" / "server"
    second_runtime = Path(second.project_path) / "src" / "zeta_board" / "server"
    modules = sorted(path.name for path in RUNTIME.glob("*.py"))
    assert modules == sorted(path.name for path in first_runtime.glob("*.py"))
    for name in modules:
        template_bytes = (RUNTIME / name).read_bytes()
        assert (first_runtime / name).read_bytes() == template_bytes, name
        assert (second_runtime / name).read_bytes() == template_bytes, name
    first_answers = json.loads((first_runtime / "answers.json").read_text(encoding="utf-8"))
    second_answers = json.loads((second_runtime / "answers.json").read_text(encoding="utf-8"))
    assert (first_answers["port"], second_answers["port"]) == (5006, 7001)
    assert second_answers["project_name"] == "Zeta Board"


@pytest.mark.timeout(300)
def test_the_wheel_holds_the_app_and_runtime_but_no_dev_tools(default_project: Path, tmp_path: Path) -> None:
    """What the container image installs: the wheel of the project (see its Dockerfile)."""
    pip = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--disable-pip-version-check"]
    subprocess.run([*pip, "-w", str(tmp_path), str(default_project)], check=True, timeout=240)
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("app/main.py", "app/app_hooks.py", "server/settings.py", "server/answers.json"):
        assert f"bokeh_dashboard/{expected}" in names, expected
    assert not [name for name in names if "devtools" in name or name.startswith("tests/")], sorted(names)
