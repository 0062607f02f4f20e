"""Template updates with cruft: bake from commit A, change the app as a user would, change the
template in commit B, ``cruft update``: B's change is in, the user's change and answers survive,
no conflict. Negative control in the same test: a user edit of the very line the template changes
next (commit C) is reported as a conflict, with both versions kept in the file, never lost.

The template is a temporary git repository copied from this one, so the test needs no remote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parent.parent
CRUFT = str(Path(sys.executable).with_name("cruft"))
RUNTIME_FILE = Path("src/{{cookiecutter.package_name}}/server/ops.py")
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
}  # fmt: skip
IGNORED = shutil.ignore_patterns(".git", ".venv*", "__pycache__", "build", ".pytest_cache", ".ruff_cache")


def run(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, cwd=cwd, env=GIT_ENV, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, f"{command}: {completed.stdout}{completed.stderr}"
    return completed


def commit(repo: Path, message: str) -> str:
    run("git", "add", "-A", cwd=repo)
    run("git", "commit", "-q", "-m", message, cwd=repo)
    return run("git", "rev-parse", "HEAD", cwd=repo).stdout.strip()


def edit_first_line(path: Path, suffix: str) -> str:
    """Append ``suffix`` to the first line of ``path``; returns the new line."""
    first, rest = path.read_text(encoding="utf-8").split("\n", 1)
    path.write_text(f"{first}{suffix}\n{rest}", encoding="utf-8")
    return first + suffix


def unmerged(project: Path) -> list[str]:
    return run("git", "diff", "--name-only", "--diff-filter=U", cwd=project).stdout.split()


@pytest.mark.timeout(600)
def test_cruft_update_merges_template_changes_keeps_the_users_and_reports_conflicts(tmp_path: Path) -> None:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=IGNORED, symlinks=True)
    run("git", "init", "-q", cwd=template)
    commit(template, "A")
    answers = {"project_name": "Zeta Board", "port": 7001}
    run(CRUFT, "create", "--no-input", "--output-dir", str(tmp_path / "out"),
        "--extra-context", json.dumps(answers), str(template), cwd=tmp_path)  # fmt: skip
    project = tmp_path / "out" / "zeta-board"
    assert json.loads((project / ".cruft.json").read_text())["context"]["cookiecutter"]["port"] == "7001"
    run("git", "init", "-q", cwd=project)
    commit(project, "Baked")

    # The user's change, where the layout says user code goes.
    main_py = project / "src" / "zeta_board" / "app" / "main.py"
    users_line = "\n\ndef my_own_helper() -> int:  # the user's code\n    return 42\n"
    main_py.write_text(main_py.read_text(encoding="utf-8") + users_line, encoding="utf-8")
    commit(project, "My app")
    # The template's change, in a file it owns.
    template_file = template / "{{cookiecutter.project_slug}}" / RUNTIME_FILE
    b_line = edit_first_line(template_file, " (template commit B)")
    b_commit = commit(template, "B")

    updated = run(CRUFT, "update", "--skip-apply-ask", cwd=project)
    output = updated.stdout + updated.stderr
    runtime = project / "src" / "zeta_board" / "server" / "ops.py"
    assert "conflict" not in output.lower() and unmerged(project) == [], output
    assert runtime.read_text(encoding="utf-8").split("\n", 1)[0] == b_line
    assert users_line in main_py.read_text(encoding="utf-8")
    answers_json = json.loads((project / "src" / "zeta_board" / "server" / "answers.json").read_text())
    assert (answers_json["port"], answers_json["project_name"]) == (7001, "Zeta Board")
    assert json.loads((project / ".cruft.json").read_text())["commit"] == b_commit
    commit(project, "Template B")
    run(CRUFT, "check", cwd=project)  # up to date with the template

    # Negative control: the user edits the line the template changes next: a reported conflict.
    mine = edit_first_line(runtime, " (my own edit)")
    commit(project, "I edited the runtime")
    c_line = edit_first_line(template_file, " (template commit C)")
    commit(template, "C")
    conflicted = run(CRUFT, "update", "--skip-apply-ask", cwd=project)
    output = conflicted.stdout + conflicted.stderr
    assert "with conflicts" in output, output
    assert unmerged(project) == ["src/zeta_board/server/ops.py"], output
    text = runtime.read_text(encoding="utf-8")
    assert mine in text and c_line in text and "<<<<<<<" in text, text[:2000]
