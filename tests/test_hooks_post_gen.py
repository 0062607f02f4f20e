"""Tests for ``hooks/post_gen_project.py``: it removes switched-off parts, scrubs the replay record
and fills the generated secrets; nothing else.

Unit tests call the functions of the hook imported unrendered and of the hook rendered the way
cookiecutter renders it (``hook_loading.load_rendered_hook``); bake tests check the same
behaviour through real bakes. Whether rendered files are sound is ``test_rendered_checks.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rendered_checks
from hook_loading import HOOKS_DIR, load_hook, load_rendered_hook, render_hook_source, sample_context

post_gen = load_hook("post_gen_project")

#: Where each part the answers control lives.
OPTIONAL_PARTS = (
    "k8s/x.yaml",
    "k8s/secrets.env",
    "k8s/gateway.yaml",
    "k8s/httproute.yaml",
    "k8s/ingress.yaml",
    "deploy/nginx.conf",
)
SECRET = (
    "BOKEH_SECRET_KEY=@GENERATED_SECRET@\n# login\nBOKEH_COOKIE_SECRET=@GENERATED_SECRET@\n"
    "DASH_OIDC_CLIENT_SECRET=\n"
)
LOCAL_CONTEXT = {
    "project_name": "Ö 📈",
    "_output_dir": "/home/me/out",
    "_repo_dir": "/home/me/template",
    "_checkout": None,
    "_template": "/home/me/template",
}


def make_optional_parts(root: Path) -> None:
    """The files each yes/no answer controls, plus a replay record with the baker's paths."""
    for name in OPTIONAL_PARTS:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("a: 1\n", encoding="utf-8")
    (root / "k8s" / "secrets.env").write_text(SECRET, encoding="utf-8")
    replay = {"cookiecutter": LOCAL_CONTEXT}
    (root / post_gen.REPLAY_FILE).write_text(json.dumps(replay), encoding="utf-8")


def test_hook_is_small() -> None:
    """The hook keeps only what a hook alone can do; checks live in the template's tests."""
    lines = (HOOKS_DIR / "post_gen_project.py").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120


def test_unrendered_module_imports_with_empty_answers() -> None:
    assert post_gen.ANSWERS == {}


# ---------------------------------------------------------------------------------------------
# remove_disabled_parts
# ---------------------------------------------------------------------------------------------


def test_disabled_parts_are_removed(tmp_path: Path) -> None:
    make_optional_parts(tmp_path)
    answers = {"include_kubernetes": False, "include_nginx": "no", "signed_sessions": False}
    assert post_gen.remove_disabled_parts(tmp_path, answers) == ["k8s/", "deploy/nginx.conf", "deploy/"]
    assert not (tmp_path / "k8s").exists()
    assert not (tmp_path / "deploy").exists()


def test_enabled_parts_are_kept_with_the_chosen_edge(tmp_path: Path) -> None:
    make_optional_parts(tmp_path)
    answers = {"include_kubernetes": True, "include_nginx": "yes", "signed_sessions": True, "edge": "gateway"}
    assert post_gen.remove_disabled_parts(tmp_path, answers) == ["k8s/ingress.yaml"]
    for name in set(OPTIONAL_PARTS) - {"k8s/ingress.yaml"}:
        assert (tmp_path / name).is_file()


def test_ingress_edge_drops_the_gateway(tmp_path: Path) -> None:
    make_optional_parts(tmp_path)
    answers = {
        "include_kubernetes": True,
        "include_nginx": True,
        "signed_sessions": True,
        "edge": "ingress-nginx",
    }
    assert post_gen.remove_disabled_parts(tmp_path, answers) == ["k8s/gateway.yaml", "k8s/httproute.yaml"]
    assert (tmp_path / "k8s" / "ingress.yaml").is_file()


def test_unsigned_sessions_drop_only_the_secret(tmp_path: Path) -> None:
    make_optional_parts(tmp_path)
    (tmp_path / "deploy" / "compose.yaml").write_text("a: 1\n", encoding="utf-8")
    answers = {"include_kubernetes": True, "include_nginx": False, "signed_sessions": False}
    assert post_gen.remove_disabled_parts(tmp_path, answers) == [
        "k8s/ingress.yaml",
        "k8s/secrets.env",
        "deploy/nginx.conf",
    ]
    assert (tmp_path / "k8s" / "x.yaml").is_file()
    assert (tmp_path / "deploy" / "compose.yaml").is_file()


def test_absent_parts_are_fine(tmp_path: Path) -> None:
    answers = {"include_kubernetes": False, "include_nginx": False, "signed_sessions": False}
    assert post_gen.remove_disabled_parts(tmp_path, answers) == []


# ---------------------------------------------------------------------------------------------
# strip_replay_paths
# ---------------------------------------------------------------------------------------------


def test_replay_record_loses_local_paths(tmp_path: Path) -> None:
    replay = tmp_path / ".cookiecutter-replay.json"
    replay.write_text(json.dumps({"cookiecutter": LOCAL_CONTEXT}), encoding="utf-8")
    assert post_gen.strip_replay_paths(replay) is True
    assert json.loads(replay.read_text(encoding="utf-8")) == {"cookiecutter": {"project_name": "Ö 📈"}}
    assert post_gen.strip_replay_paths(replay) is False


def test_replay_record_keeps_remote_template(tmp_path: Path) -> None:
    replay = tmp_path / ".cookiecutter-replay.json"
    context = {"_template": "https://github.com/org/template.git", "_repo_dir": "/tmp/x"}
    replay.write_text(json.dumps({"cookiecutter": context}), encoding="utf-8")
    assert post_gen.strip_replay_paths(replay) is True
    record = json.loads(replay.read_text(encoding="utf-8"))
    assert record == {"cookiecutter": {"_template": "https://github.com/org/template.git"}}


@pytest.mark.parametrize("text", [None, "{", "[1, 2]", '{"cookiecutter": "x"}'], ids=repr)
def test_absent_or_odd_replay_record_is_left_alone(tmp_path: Path, text: str | None) -> None:
    replay = tmp_path / ".cookiecutter-replay.json"
    if text is not None:
        replay.write_text(text, encoding="utf-8")
    assert post_gen.strip_replay_paths(replay) is False
    assert (replay.read_text(encoding="utf-8") if text is not None else None) == text


# ---------------------------------------------------------------------------------------------
# fill_secrets
# ---------------------------------------------------------------------------------------------


def env_values(path: Path) -> dict[str, str]:
    return rendered_checks.env_file_values(path.read_text(encoding="utf-8"))


def test_secrets_are_generated_once_each_its_own(tmp_path: Path) -> None:
    secret = tmp_path / "k8s" / "secrets.env"
    secret.parent.mkdir()
    secret.write_text(SECRET, encoding="utf-8")
    assert post_gen.fill_secrets(tmp_path) == 2
    values = env_values(secret)
    assert len(values["BOKEH_SECRET_KEY"]) >= 32 and len(values["BOKEH_COOKIE_SECRET"]) >= 32
    assert values["BOKEH_SECRET_KEY"] != values["BOKEH_COOKIE_SECRET"]
    assert values["DASH_OIDC_CLIENT_SECRET"] == "" and "# login" in secret.read_text(encoding="utf-8")
    assert post_gen.fill_secrets(tmp_path) == 0  # nothing left to replace: the values stay
    assert env_values(secret) == values


def test_secrets_come_from_make_secret(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "secrets.env").write_text(SECRET, encoding="utf-8")
    made = iter(["first", "second"])
    assert post_gen.fill_secrets(tmp_path, make_secret=lambda: next(made)) == 2
    values = env_values(tmp_path / "k8s" / "secrets.env")
    assert (values["BOKEH_SECRET_KEY"], values["BOKEH_COOKIE_SECRET"]) == ("first", "second")


def test_no_secret_file_means_nothing_to_fill(tmp_path: Path) -> None:
    assert post_gen.fill_secrets(tmp_path) == 0


# ---------------------------------------------------------------------------------------------
# The hook after rendering (what cookiecutter runs)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "kept", "gone"),
    [
        pytest.param(
            {"include_kubernetes": False, "include_nginx": False, "signed_sessions": False},
            [],
            ["k8s", "deploy"],
            id="all-off",
        ),
        pytest.param(
            {"include_kubernetes": True, "include_nginx": True, "signed_sessions": False},
            ["k8s/x.yaml", "k8s/gateway.yaml", "deploy/nginx.conf"],
            ["k8s/secrets.env", "k8s/ingress.yaml"],
            id="unsigned",
        ),
        pytest.param(
            {"include_kubernetes": True, "include_nginx": "no", "signed_sessions": "yes"},
            ["k8s/x.yaml", "k8s/secrets.env", "k8s/gateway.yaml"],
            ["deploy", "k8s/ingress.yaml"],
            id="words",
        ),
    ],
)
def test_rendered_hook_trims_by_its_baked_answers(
    tmp_path: Path, options: dict[str, Any], kept: list[str], gone: list[str]
) -> None:
    answers = sample_context(project_name='Bob\'s "Dash" \\ 📈', **options)
    module = load_rendered_hook("post_gen_project", answers, tmp_path)
    assert answers == module.ANSWERS
    project = tmp_path / "project"
    project.mkdir()
    make_optional_parts(project)
    module.main(module.ANSWERS, project)
    assert all((project / name).exists() for name in kept)
    assert not any((project / name).exists() for name in gone)
    replay = json.loads((project / ".cookiecutter-replay.json").read_text(encoding="utf-8"))
    assert replay == {"cookiecutter": {"project_name": "Ö 📈"}}
    if "k8s/secrets.env" in kept:
        assert rendered_checks.check_secret_key(project, module.ANSWERS) == []


def test_rendered_hook_runs_as_a_script(tmp_path: Path) -> None:
    """Run the rendered file with the interpreter in the project directory, as cookiecutter does."""
    answers = sample_context(include_kubernetes=True, include_nginx=False, signed_sessions=True)
    script = tmp_path / "post_gen_project.py"
    script.write_text(render_hook_source("post_gen_project", answers), encoding="utf-8")
    project = tmp_path / "project"
    project.mkdir()
    make_optional_parts(project)
    subprocess.run([sys.executable, str(script)], cwd=project, check=True)
    assert not (project / "deploy").exists()
    assert rendered_checks.check_secret_key(project, answers) == []


# ---------------------------------------------------------------------------------------------
# Real bakes
# ---------------------------------------------------------------------------------------------


def test_baked_project_replay_record_holds_no_local_paths(cookies_session: Any) -> None:
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    replay = result.project_path / ".cookiecutter-replay.json"
    assert replay.exists(), "the template must record its answers in .cookiecutter-replay.json"
    record = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    assert set(record).isdisjoint({"_output_dir", "_repo_dir", "_checkout", "_template"})
    assert record["project_slug"] == "bokeh-dashboard"


def test_switched_off_parts_are_absent_after_a_real_bake(cookies: Any) -> None:
    result = cookies.bake(extra_context={"include_kubernetes": "no", "include_nginx": "no"})
    assert result.exit_code == 0, result.exception
    assert not (result.project_path / "k8s").exists()
    assert not (result.project_path / "deploy" / "nginx.conf").exists()


def test_two_signed_bakes_get_different_keys(cookies: Any) -> None:
    keys = []
    for _ in range(2):
        result = cookies.bake(extra_context={"signed_sessions": True})
        assert result.exit_code == 0, result.exception
        keys.append(env_values(result.project_path / "k8s" / "secrets.env")["BOKEH_SECRET_KEY"])
    assert keys[0] != keys[1]
    assert all(len(key) >= 32 for key in keys)
