"""Hostile answers through every way cookiecutter takes them: each bakes or is refused naming the field.

Names with only ``project_name`` given either bake (the derived slug and package asserted, the
rendered files passing ``rendered_checks``) or stop in the pre-gen hook naming ``project_name``.
Jinja markup in an answer never renders: given as extra context (pytest-cookies, the CLI's
``key=value`` with ``--no-input``) it is refused by ``local_extensions.AnswerMarkupGuard`` with
cookiecutter's ``Unable to render variable '<field>'``; typed at the prompts or replayed it is
refused by the pre-gen hook. Every refusal exits non-zero and leaves no output directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rendered_checks
from cookiecutter.exceptions import FailedHookException, UndefinedVariableInTemplate
from hook_loading import HOOKS_DIR, TEMPLATE_ROOT, sample_context, template_importable

with template_importable():
    import local_extensions

COOKIECUTTER = str(Path(sys.executable).with_name("cookiecutter"))
JINJA = {
    "expression": "{" + "{ 7*7 }" + "}",
    "statement": "{" + "% if %" + "}",
    "comment": "{" + "# x #" + "}",
}
JINJA_FIELDS = ["project_name", "description", "author_name", "author_email", "allowed_origins", "port"]
LONG_NAME = " ".join(["Quarterly"] * 30)  # 299 characters


def assert_nothing_left(output_dir: Path) -> None:
    """No project (nor anything else) was written to ``output_dir``."""
    assert list(output_dir.iterdir()) == []


def assert_no_bake_left(tmpdir: Any) -> None:
    """pytest-cookies bakes into ``<tmpdir>/cookies/bakeNN`` (made only once rendering the answers
    succeeded); none of them may hold anything."""
    cookies_dir = Path(str(tmpdir)) / "cookies"
    bakes = list(cookies_dir.iterdir()) if cookies_dir.is_dir() else []
    assert [path for bake in bakes for path in bake.iterdir()] == []


# ---------------------------------------------------------------------------------------------
# Names given alone: bake with the derived slug, or refuse naming project_name
# ---------------------------------------------------------------------------------------------


#: Names given alone that must bake: (name, derived slug), each with a test id.
NAMES_THAT_BAKE = [
    pytest.param("Café Analytics", "cafe-analytics", id="accents"),
    pytest.param("数据看板", "shu-ju-kan-ban", id="cjk"),
    pytest.param('Bob\'s "Dash"', "bob-s-dash", id="quotes"),
    pytest.param(LONG_NAME, "-".join(["quarterly"] * 6), id="299-characters"),
    pytest.param("x" * 300, "x" * 63, id="300-character-word"),
]


@pytest.mark.parametrize(("name", "slug"), NAMES_THAT_BAKE)
def test_name_alone_bakes_with_the_derived_names(cookies: Any, name: str, slug: str) -> None:
    result = cookies.bake(extra_context={"project_name": name})
    assert result.exit_code == 0, result.exception
    package = slug.replace("-", "_")
    assert result.project_path.name == slug
    assert (result.project_path / "src" / package / "__init__.py").is_file()
    assert result.context["project_slug"] == slug and result.context["package_name"] == package
    replay = json.loads((result.project_path / ".cookiecutter-replay.json").read_text(encoding="utf-8"))
    assert replay["cookiecutter"]["project_name"] == name
    assert rendered_checks.project_problems(result.project_path, dict(result.context)) == []


@pytest.mark.parametrize(
    ("name", "says"),
    [
        pytest.param("Test", "(package_name 'test') shadows", id="stdlib-name"),
        pytest.param("123 Dashboard", "starts with a digit", id="leading-digits"),
        pytest.param("!!!", "no letters or digits", id="no-letters"),
        pytest.param("📈📉", "no letters or digits", id="emoji-only"),
    ],
)
def test_name_alone_without_a_valid_derivation_is_refused_naming_it(
    cookies: Any, tmpdir: Any, capfd: pytest.CaptureFixture[str], name: str, says: str
) -> None:
    result = cookies.bake(extra_context={"project_name": name})
    err = capfd.readouterr().err
    assert result.exit_code != 0
    assert isinstance(result.exception, FailedHookException)
    assert f"ERROR: project_name: got {name!r}; " in err and says in err
    assert "ERROR: project_slug" not in err and "ERROR: package_name" not in err
    assert_no_bake_left(tmpdir)


def test_ipv6_origin_is_refused_naming_the_field(
    cookies: Any, tmpdir: Any, capfd: pytest.CaptureFixture[str]
) -> None:
    result = cookies.bake(extra_context={"allowed_origins": "[::1]:5006"})
    assert isinstance(result.exception, FailedHookException)
    assert (
        "ERROR: allowed_origins: got '[::1]:5006'; '[::1]:5006' is an IPv6 address" in capfd.readouterr().err
    )
    assert_no_bake_left(tmpdir)


# ---------------------------------------------------------------------------------------------
# Jinja in extra context (pytest-cookies): refused by the guard, naming the field
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("markup", JINJA.values(), ids=JINJA.keys())
@pytest.mark.parametrize("field", JINJA_FIELDS)
def test_jinja_in_extra_context_is_refused_naming_the_field(
    cookies: Any, tmpdir: Any, field: str, markup: str
) -> None:
    result = cookies.bake(extra_context={field: f"a {markup} b"})
    assert result.exit_code != 0
    assert isinstance(result.exception, UndefinedVariableInTemplate)
    assert result.exception.message == f"Unable to render variable '{field}'"
    assert isinstance(result.exception.error, local_extensions.AnswerHoldsJinja)
    assert markup[:2] in result.exception.error.message
    assert_no_bake_left(tmpdir)


# ---------------------------------------------------------------------------------------------
# The real cookiecutter CLI: --no-input key=value, typed answers, replay
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path) -> tuple[list[str], Path]:
    """The cookiecutter command with a private user config (replay and clone dirs in ``tmp_path``)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(tmp_path / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(tmp_path / 'replay'))}\n",
        encoding="utf-8",
    )
    output = tmp_path / "out"
    output.mkdir()
    return [COOKIECUTTER, str(TEMPLATE_ROOT), "--config-file", str(config), "-o", str(output)], output


def run(command: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI and capture its output (no terminal, so typed answers come from ``stdin``)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("markup", JINJA.values(), ids=JINJA.keys())
@pytest.mark.parametrize("field", JINJA_FIELDS)
def test_cli_no_input_refuses_jinja_naming_the_field(
    cli: tuple[list[str], Path], field: str, markup: str
) -> None:
    command, output = cli
    completed = run([*command, "--no-input", f"{field}=x {markup}"])
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert completed.stdout.startswith(f"Unable to render variable '{field}'\nError message: the answer ")
    assert "Traceback" not in completed.stdout + completed.stderr
    assert_nothing_left(output)


def test_cli_no_input_bakes_a_hostile_name(cli: tuple[list[str], Path]) -> None:
    """Control: the same command bakes when the answer holds no markup."""
    command, output = cli
    completed = run([*command, "--no-input", "project_name=数据看板", "description=a { b } c %}"])
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert [path.name for path in output.iterdir()] == ["shu-ju-kan-ban"]


def typed_answers(**answers: str) -> str:
    """Lines for the interactive prompts: the given answers, the default (empty line) elsewhere."""
    fields = [key for key in json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text("utf-8"))]
    prompted = [key for key in fields if not key.startswith("_")]
    return "".join(f"{answers.get(key, '')}\n" for key in prompted)


@pytest.mark.parametrize("field", ["project_name", "description", "author_name", "allowed_origins"])
def test_cli_typed_jinja_is_refused_by_the_hook_naming_the_field(
    cli: tuple[list[str], Path], field: str
) -> None:
    """Typed answers are not rendered by cookiecutter (prompt.read_user_variable); the hook refuses them."""
    command, output = cli
    completed = run(command, stdin=typed_answers(**{field: JINJA["expression"]}))
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert completed.stderr.startswith(
        f"ERROR: {field}: got '{JINJA['expression']}'; holds Jinja template markup"
    )
    assert_nothing_left(output)


def test_cli_typed_answers_bake(cli: tuple[list[str], Path]) -> None:
    """Control: the same prompts with a plain hostile name bake the derived folder."""
    command, output = cli
    completed = run(command, stdin=typed_answers(project_name="Café Analytics"))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert [path.name for path in output.iterdir()] == ["cafe-analytics"]


def test_cli_replayed_jinja_is_refused_by_the_hook(cli: tuple[list[str], Path], tmp_path: Path) -> None:
    """Replayed answers are not rendered either (main.cookiecutter uses them as they are)."""
    command, output = cli
    answers = sample_context()
    replay = tmp_path / "answers.json"
    replay.write_text(json.dumps({"cookiecutter": {**answers, "description": JINJA["statement"]}}), "utf-8")
    completed = run([*command, "--replay-file", str(replay)])
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert completed.stderr.startswith(f"ERROR: description: got '{JINJA['statement']}'; holds Jinja")
    assert_nothing_left(output)
    replay.write_text(json.dumps({"cookiecutter": answers}), "utf-8")
    assert run([*command, "--replay-file", str(replay)]).returncode == 0


# ---------------------------------------------------------------------------------------------
# The guard itself
# ---------------------------------------------------------------------------------------------


def test_guard_is_registered() -> None:
    extensions = json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text("utf-8"))["_extensions"]
    assert "local_extensions.AnswerMarkupGuard" in extensions


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("plain { text } %}", id="no-markup"),
        pytest.param(
            json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text("utf-8"))["project_slug"],
            id="slug-default",
        ),
        pytest.param((HOOKS_DIR / "pre_gen_project.py").read_text("utf-8"), id="pre-gen-hook"),
        pytest.param((HOOKS_DIR / "post_gen_project.py").read_text("utf-8"), id="post-gen-hook"),
        pytest.param("{" + "{cookiecutter.project_slug}" + "}", id="project-folder"),
        pytest.param("src/{" + "{cookiecutter.package_name}" + "}/__init__.py", id="file-path"),
        pytest.param("/out/dash/./src/{" + "{cookiecutter.package_name}" + "}", id="dir-path"),
    ],
)
def test_guard_lets_the_templates_own_sources_through(source: str) -> None:
    local_extensions.refuse_answer_markup(source, None)


def test_guard_lets_named_templates_through() -> None:
    """File contents are loaded by name; they are the template's, never answers."""
    local_extensions.refuse_answer_markup(JINJA["statement"], "README.md")


@pytest.mark.parametrize(
    "source",
    [
        *JINJA.values(),
        "{" + "{ cookiecutter.project_name }" + "}",
        "x/src/{" + "{cookiecutter.other}" + "}",
        (HOOKS_DIR / "pre_gen_project.py").read_text("utf-8") + " ",
    ],
)
def test_guard_refuses_other_sources_with_markup(source: str) -> None:
    with pytest.raises(local_extensions.AnswerHoldsJinja, match="holds Jinja markup"):
        local_extensions.refuse_answer_markup(source, None)
