"""Tests for ``hooks/pre_gen_project.py``: every bad answer is refused before anything is written.

Unit tests call the validation functions on plain dicts; bake tests run the real cookiecutter
through pytest-cookies and check that a bad answer stops the bake with ``FailedHookException``,
names the field on stderr and leaves no project directory behind; the last tests prove that
hostile-but-valid text survives the round trip into TOML and Python byte for byte.
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
from cookiecutter.exceptions import FailedHookException
from hook_loading import HOOKS_DIR, load_hook, load_rendered_hook, render_hook_source, sample_context

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

pre_gen = load_hook("pre_gen_project")

GOOD: dict[str, Any] = {
    "project_name": "Bokeh Dashboard",
    "project_slug": "bokeh-dashboard",
    "package_name": "bokeh_dashboard",
    "description": "A dashboard.",
    "author_name": "Jane Doe",
    "author_email": "jane.doe@example.com",
    "python_version": "3.12",
    "port": "5006",
    "allowed_origins": "localhost:5006",
    "unused_session_lifetime_ms": "300000",
    "check_unused_sessions_ms": "60000",
    "memory_limit": "1Gi",
    "replicas": "2",
    "include_kubernetes": True,
    "edge": "gateway",
    "include_nginx": True,
    "signed_sessions": False,
    "auth": "none",
}

HOSTILE_NAME = 'Ünïcødé "Quoted" \\ Back\'slash 📈 Board'
HOSTILE_DESCRIPTION = "Says \"hi\" and 'bye' \\ C:\\path\\ ''' \"\"\" { braces } and }{ 🚀 ✓ café"
HOSTILE_AUTHOR = 'O\'Brien "Ö" \\'


def with_answer(**changes: Any) -> dict[str, Any]:
    """The good answers with some replaced."""
    return {**GOOD, **changes}


# ---------------------------------------------------------------------------------------------
# Unit tests on plain dicts
# ---------------------------------------------------------------------------------------------


def test_unrendered_module_imports_with_empty_answers() -> None:
    assert pre_gen.ANSWERS == {}


def test_good_answers_pass() -> None:
    assert pre_gen.validate(GOOD) == []
    assert pre_gen.main(GOOD) == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("project_name", HOSTILE_NAME, id="name-hostile"),
        pytest.param("description", "", id="description-empty"),
        pytest.param("description", HOSTILE_DESCRIPTION, id="description-hostile"),
        pytest.param("author_name", HOSTILE_AUTHOR, id="author-hostile"),
        pytest.param("project_slug", "a", id="slug-one-letter"),
        pytest.param("project_slug", "my-2nd-board", id="slug-digits"),
        pytest.param("project_slug", "a" * 63, id="slug-63-chars"),
        pytest.param("package_name", "_private_board", id="package-underscore"),
        pytest.param("package_name", "match", id="package-soft-keyword"),
        pytest.param("port", 5006, id="port-int"),
        pytest.param("port", "65535", id="port-max"),
        pytest.param("port", "1", id="port-min"),
        pytest.param(
            "allowed_origins",
            "localhost:5006, dash.example.com,127.0.0.1:80,my-host.local",
            id="origins-mixed",
        ),
        pytest.param("memory_limit", "128Mi", id="memory-minimum"),
        pytest.param("memory_limit", "0.125Gi", id="memory-decimal-minimum"),
        pytest.param("memory_limit", "134217728", id="memory-plain-bytes"),
        pytest.param("memory_limit", "2G", id="memory-decimal-suffix"),
        pytest.param("memory_limit", "1.5Gi", id="memory-fraction"),
        pytest.param("replicas", 100, id="replicas-max"),
        pytest.param("replicas", "1", id="replicas-min"),
        pytest.param("include_kubernetes", "Yes", id="bool-yes-word"),
        pytest.param("include_nginx", "FALSE", id="bool-false-word"),
        pytest.param("signed_sessions", True, id="bool-real"),
        pytest.param("check_unused_sessions_ms", "300000", id="check-equals-lifetime"),
        pytest.param("python_version", "3.10", id="python-3.10"),
        pytest.param("edge", "ingress-nginx", id="edge-ingress-nginx"),
    ],
)
def test_valid_variants_pass(field: str, value: object) -> None:
    assert pre_gen.validate(with_answer(**{field: value})) == []


BAD_ANSWERS = [
    pytest.param("project_name", "", id="name-empty"),
    pytest.param("project_name", "   ", id="name-blank"),
    pytest.param("project_name", "Two\nLines", id="name-newline"),
    pytest.param("project_name", "Tab\there", id="name-tab"),
    pytest.param("project_name", "Del\x7f", id="name-del-char"),
    pytest.param("project_slug", "bad slug", id="slug-space"),
    pytest.param("project_slug", "BadSlug", id="slug-uppercase"),
    pytest.param("project_slug", "1board", id="slug-leading-digit"),
    pytest.param("project_slug", "board-", id="slug-trailing-hyphen"),
    pytest.param("project_slug", "my--board", id="slug-double-hyphen"),
    pytest.param("project_slug", "my_board", id="slug-underscore"),
    pytest.param("project_slug", "a" * 64, id="slug-64-too-long-for-kubernetes"),
    pytest.param("project_slug", "", id="slug-empty"),
    pytest.param("package_name", "class", id="package-keyword"),
    pytest.param("package_name", "json", id="package-stdlib"),
    pytest.param("package_name", "asyncio", id="package-stdlib-asyncio"),
    pytest.param("package_name", "bokeh", id="package-bokeh"),
    pytest.param("package_name", "tornado", id="package-tornado"),
    pytest.param("package_name", "tests", id="package-tests"),
    pytest.param("package_name", "app", id="package-app"),
    pytest.param("package_name", "my-board", id="package-hyphen"),
    pytest.param("package_name", "MyBoard", id="package-uppercase"),
    pytest.param("package_name", "2board", id="package-leading-digit"),
    pytest.param("package_name", "bördle", id="package-non-ascii"),
    pytest.param("description", "line one\nline two", id="description-newline"),
    pytest.param("author_name", "", id="author-empty"),
    pytest.param("author_name", "Jane\rDoe", id="author-carriage-return"),
    pytest.param("author_email", "nope", id="email-no-at"),
    pytest.param("author_email", "a@b", id="email-no-dot"),
    pytest.param("author_email", "a b@example.com", id="email-space"),
    pytest.param("author_email", "a@@example.com", id="email-double-at"),
    pytest.param("python_version", "3.9", id="python-3.9"),
    pytest.param("python_version", "3.14", id="python-3.14"),
    pytest.param("port", "0", id="port-zero"),
    pytest.param("port", 70000, id="port-too-big"),
    pytest.param("port", "abc", id="port-text"),
    pytest.param("port", "-1", id="port-negative"),
    pytest.param("port", "50.5", id="port-decimal"),
    pytest.param("port", True, id="port-bool"),
    pytest.param("allowed_origins", "*", id="origin-star"),
    pytest.param("allowed_origins", "*.example.com", id="origin-wildcard-host"),
    pytest.param("allowed_origins", "http://example.com", id="origin-scheme"),
    pytest.param("allowed_origins", "example.com/app", id="origin-path"),
    pytest.param("allowed_origins", "a b", id="origin-space"),
    pytest.param("allowed_origins", "", id="origin-empty"),
    pytest.param("allowed_origins", "localhost:5006,", id="origin-trailing-comma"),
    pytest.param("allowed_origins", "localhost:0", id="origin-port-zero"),
    pytest.param("allowed_origins", "localhost:99999", id="origin-port-too-big"),
    pytest.param("allowed_origins", "localhost:", id="origin-port-missing"),
    pytest.param("allowed_origins", "localhost:http", id="origin-port-text"),
    pytest.param("allowed_origins", "::1", id="origin-ipv6-unbracketed"),
    pytest.param("allowed_origins", "[::1]:5006", id="origin-ipv6-bracketed-port"),
    pytest.param("allowed_origins", "[2001:db8::1]", id="origin-ipv6-bracketed"),
    pytest.param("allowed_origins", "localhost:5006,[::1]:5006", id="origin-ipv6-after-good"),
    pytest.param("allowed_origins", "[nothex]:5006", id="origin-ipv6-bad"),
    pytest.param("allowed_origins", "localhost:5006:1", id="origin-two-colons"),
    pytest.param("allowed_origins", "300.1.1.1", id="origin-ipv4-bad"),
    pytest.param("allowed_origins", "host_name", id="origin-underscore"),
    pytest.param("allowed_origins", "-bad.example.com", id="origin-label-hyphen"),
    pytest.param("unused_session_lifetime_ms", "0", id="lifetime-zero"),
    pytest.param("unused_session_lifetime_ms", "-5", id="lifetime-negative"),
    pytest.param("unused_session_lifetime_ms", "1.5", id="lifetime-decimal"),
    pytest.param("unused_session_lifetime_ms", "soon", id="lifetime-text"),
    pytest.param("unused_session_lifetime_ms", True, id="lifetime-bool"),
    pytest.param("unused_session_lifetime_ms", 1.5, id="lifetime-float"),
    pytest.param("check_unused_sessions_ms", "0", id="check-zero"),
    pytest.param("check_unused_sessions_ms", "", id="check-empty"),
    pytest.param("check_unused_sessions_ms", "300001", id="check-longer-than-lifetime"),
    pytest.param("memory_limit", "1GB", id="memory-GB"),
    pytest.param("memory_limit", "1gi", id="memory-lowercase-gi"),
    pytest.param("memory_limit", "512m", id="memory-milli"),
    pytest.param("memory_limit", "-1Gi", id="memory-negative"),
    pytest.param("memory_limit", "", id="memory-empty"),
    pytest.param("memory_limit", "1 Gi", id="memory-space"),
    pytest.param("memory_limit", "64Mi", id="memory-below-128Mi"),
    pytest.param("memory_limit", "127Mi", id="memory-just-below-128Mi"),
    pytest.param("replicas", "0", id="replicas-zero"),
    pytest.param("replicas", "101", id="replicas-too-many"),
    pytest.param("replicas", "two", id="replicas-text"),
    pytest.param("include_kubernetes", "maybe", id="bool-maybe"),
    pytest.param("include_nginx", "1", id="bool-digit"),
    pytest.param("signed_sessions", None, id="bool-none"),
    pytest.param("edge", "traefik", id="edge-unknown"),
    pytest.param("edge", "Gateway", id="edge-case"),
    pytest.param("auth", "saml", id="auth-unknown"),
]


@pytest.mark.parametrize(("field", "value"), BAD_ANSWERS)
def test_bad_answer_is_refused_naming_the_field(field: str, value: object) -> None:
    errors = pre_gen.validate(with_answer(**{field: value}))
    assert [error for error in errors if error.startswith(f"ERROR: {field}: got {value!r}; ")], errors
    assert all("\n" not in error for error in errors)


def test_check_longer_than_lifetime_says_how_to_fix() -> None:
    answers = with_answer(unused_session_lifetime_ms="1000", check_unused_sessions_ms="2000")
    (error,) = pre_gen.validate(answers)
    assert error.startswith("ERROR: check_unused_sessions_ms: got '2000'; ")
    assert "lower check_unused_sessions_ms to at most 1000" in error
    assert "lifetime + check interval" in error


def test_login_needs_signed_sessions() -> None:
    """auth=oidc with unsigned session ids is refused, naming auth and saying what to answer."""
    (error,) = pre_gen.validate(with_answer(auth="oidc", signed_sessions="no"))
    assert error.startswith("ERROR: auth: got 'oidc'; login needs signed session ids")
    assert "answer signed_sessions yes, or choose auth none" in error
    assert pre_gen.validate(with_answer(auth="oidc", signed_sessions=True)) == []


def test_memory_message_names_the_minimum() -> None:
    (error,) = pre_gen.validate(with_answer(memory_limit="64Mi"))
    assert "at least 128Mi" in error


def test_missing_answer_is_reported() -> None:
    answers = dict(GOOD)
    del answers["replicas"]
    assert pre_gen.validate(answers) == ["ERROR: replicas: missing; cookiecutter.json must define it"]


def test_every_bad_field_is_reported_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    answers = with_answer(project_slug="Bad Slug", port="0", memory_limit="1GB", replicas="0")
    assert pre_gen.main(answers) == 1
    err = capsys.readouterr().err
    for field in ("project_slug", "port", "memory_limit", "replicas"):
        assert f"ERROR: {field}: got " in err


def test_quantity_to_bytes_matches_settings_grammar() -> None:
    assert pre_gen.quantity_to_bytes("1Gi") == 2**30
    assert pre_gen.quantity_to_bytes("512M") == 512 * 10**6
    assert pre_gen.quantity_to_bytes("1.5Ki") == 1536
    assert pre_gen.quantity_to_bytes("512m") is None


@pytest.mark.parametrize("hook", ["pre_gen_project", "post_gen_project"])
def test_hook_renders_to_python_holding_the_exact_answers(hook: str) -> None:
    """Rendering with hostile answers yields valid Python whose ANSWERS equal the input."""
    source = (HOOKS_DIR / f"{hook}.py").read_text(encoding="utf-8")
    markers = ("{" + "{", "{" + "%", "{" + "#")
    assert sum(source.count(marker) for marker in markers) == 1, "only the answers line may hold Jinja"
    context = with_answer(project_name=HOSTILE_NAME + "'''", description=HOSTILE_DESCRIPTION, x="</script>")
    rendered = jinja2.Environment().from_string(source).render(cookiecutter=context)
    namespace: dict[str, Any] = {"__name__": f"rendered_{hook}"}
    exec(compile(rendered, f"rendered_{hook}.py", "exec"), namespace)
    assert namespace["ANSWERS"] == context


# ---------------------------------------------------------------------------------------------
# Derived defaults: errors name the field the user typed
# ---------------------------------------------------------------------------------------------

JINJA = ["{" + "{ 7*7 }" + "}", "{" + "% if %" + "}", "{" + "# note #" + "}"]
LONG_NAME = " ".join(["Quarterly"] * 30)  # 299 characters


def derived(project_name: str, **changes: Any) -> dict[str, Any]:
    """The good answers for ``project_name`` with the slug and package derived from it."""
    slug = pre_gen.derive_slug(project_name)
    package = pre_gen.derive_package(slug)
    return with_answer(
        **{"project_name": project_name, "project_slug": slug, "package_name": package, **changes}
    )


@pytest.mark.parametrize(
    "name",
    [
        "Bokeh Dashboard",
        "Café Analytics",
        "数据看板",
        'Bob\'s "Dash"',
        LONG_NAME,
        "a" * 300,
        "Test",
        "!!!",
        "1st",
    ],
)
def test_derivation_is_what_cookiecutter_json_renders(name: str) -> None:
    """The hook's one derivation helper and cookiecutter's rendering of cookiecutter.json agree."""
    context = sample_context(project_name=name)
    assert context["project_slug"] == pre_gen.derive_slug(name)
    assert context["package_name"] == pre_gen.derive_package(context["project_slug"])


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Café Analytics", "cafe-analytics"),
        ("数据看板", "shu-ju-kan-ban"),
        ('Bob\'s "Dash"', "bob-s-dash"),
        (HOSTILE_NAME, "unicode-quoted-back-slash-board"),
        (LONG_NAME, "-".join(["quarterly"] * 6)),
        ("a" * 300, "a" * 63),
        ("Zeta Board", "zeta-board"),
    ],
)
def test_names_with_a_valid_derivation_pass(name: str, slug: str) -> None:
    answers = derived(name)
    assert answers["project_slug"] == slug
    assert len(slug) <= pre_gen.SLUG_MAX_LENGTH
    assert pre_gen.validate(answers) == []


@pytest.mark.parametrize(
    ("name", "says"),
    [
        pytest.param("Test", "(package_name 'test') shadows", id="stdlib-or-reserved"),
        pytest.param("json", "(package_name 'json') shadows a standard-library module", id="stdlib"),
        pytest.param("Class", "(package_name 'class') is a Python keyword", id="keyword"),
        pytest.param("Bokeh", "(package_name 'bokeh') shadows a dependency", id="dependency"),
        pytest.param("123 Dashboard", "starts with a digit; start project_name with a letter", id="digits"),
        pytest.param("!!!", "no letters or digits", id="punctuation-only"),
        pytest.param("📈", "no letters or digits", id="emoji-only"),
    ],
)
def test_invalid_derivation_names_project_name(name: str, says: str) -> None:
    (error,) = pre_gen.validate(derived(name))
    assert error.startswith(f"ERROR: project_name: got {name!r}; ")
    assert says in error
    assert "e.g. '" in error  # says what to type instead


def test_suggested_names_are_valid() -> None:
    """The example a derived-name error suggests does bake."""
    for name in ("Test", "json", "Class", "Bokeh", "123 Dashboard", "!!!"):
        (error,) = pre_gen.validate(derived(name))
        suggestion = error.rsplit("e.g. ", 1)[1].strip("'")
        assert pre_gen.validate(derived(suggestion)) == [], suggestion


def test_typed_slug_with_an_invalid_derived_package_names_the_slug() -> None:
    (error,) = pre_gen.validate(with_answer(project_slug="json", package_name="json"))
    assert error.startswith("ERROR: project_slug: got 'json'; the Python package name derived from it")
    assert "e.g. 'json-dashboard'" in error


def test_typed_package_is_named_itself() -> None:
    (error,) = pre_gen.validate(derived("Json Board", package_name="json"))
    assert error.startswith("ERROR: package_name: got 'json'; shadows a standard-library module")


TEXT_FIELDS = ["project_name", "project_slug", "package_name", "description", "author_name", "author_email"]
NUMBER_FIELDS = ["port", "allowed_origins", "unused_session_lifetime_ms", "memory_limit", "replicas"]


@pytest.mark.parametrize("markup", JINJA)
@pytest.mark.parametrize("field", TEXT_FIELDS + NUMBER_FIELDS)
def test_jinja_in_any_answer_is_refused_naming_the_field(field: str, markup: str) -> None:
    """Typed and replayed answers reach the hook unrendered; exactly one error, for that field."""
    answers = derived(markup) if field == "project_name" else with_answer(**{field: f"x {markup}"})
    if field == "project_slug":
        answers["package_name"] = pre_gen.derive_package(answers["project_slug"])
    (error,) = pre_gen.validate(answers)
    assert error.startswith(f"ERROR: {field}: got {answers[field]!r}; holds Jinja template markup ")


def test_ipv6_origin_message_explains_and_suggests_a_hostname() -> None:
    (error,) = pre_gen.validate(with_answer(allowed_origins="[::1]:5006"))
    assert error.startswith("ERROR: allowed_origins: got '[::1]:5006'; '[::1]:5006' is an IPv6 address")
    assert "Invalid host value" in error and "hostname" in error


# ---------------------------------------------------------------------------------------------
# The hook after rendering (what cookiecutter runs)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answers", "refused_field"),
    [
        pytest.param(sample_context(project_name="数据看板"), None, id="cjk-name"),
        pytest.param(sample_context(project_name=HOSTILE_NAME), None, id="hostile-name"),
        pytest.param(derived(JINJA[0]), "project_name", id="jinja-name"),
        pytest.param(derived("Test"), "project_name", id="stdlib-name"),
        pytest.param(with_answer(description=JINJA[1] + "'''"), "description", id="jinja-description"),
        pytest.param(with_answer(allowed_origins="[::1]:5006"), "allowed_origins", id="ipv6"),
    ],
)
def test_rendered_hook_validates_its_baked_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], answers: dict[str, Any], refused_field: str | None
) -> None:
    module = load_rendered_hook("pre_gen_project", answers, tmp_path)
    assert answers == module.ANSWERS
    assert module.main(module.ANSWERS) == (0 if refused_field is None else 1)
    err = capsys.readouterr().err
    if refused_field is None:
        assert err == ""
    else:
        assert err.startswith(f"ERROR: {refused_field}: got ")


def test_rendered_hook_script_exits_1_naming_the_field(tmp_path: Path) -> None:
    """Run the rendered file with the interpreter, as cookiecutter's ``run_script`` does."""
    script = tmp_path / "pre_gen_project.py"
    script.write_text(render_hook_source("pre_gen_project", derived("Café", author_name=JINJA[2])), "utf-8")
    completed = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path)
    assert completed.returncode == 1
    assert completed.stderr.startswith("ERROR: author_name: got ")
    script.write_text(render_hook_source("pre_gen_project", derived("Café")), "utf-8")
    assert subprocess.run([sys.executable, str(script)], cwd=tmp_path).returncode == 0


# ---------------------------------------------------------------------------------------------
# Bake tests through cookiecutter (pytest-cookies)
# ---------------------------------------------------------------------------------------------

BAD_BAKES = [
    pytest.param({"project_slug": "bad slug"}, "project_slug", id="slug-space"),
    pytest.param({"project_slug": "BadSlug"}, "project_slug", id="slug-uppercase"),
    pytest.param({"package_name": "class"}, "package_name", id="package-keyword"),
    pytest.param({"package_name": "json"}, "package_name", id="package-stdlib"),
    pytest.param({"package_name": "bokeh"}, "package_name", id="package-bokeh"),
    pytest.param({"port": 0}, "port", id="port-zero"),
    pytest.param({"port": 70000}, "port", id="port-too-big"),
    pytest.param({"port": "abc"}, "port", id="port-text"),
    pytest.param({"unused_session_lifetime_ms": 0}, "unused_session_lifetime_ms", id="lifetime-zero"),
    pytest.param({"unused_session_lifetime_ms": -5}, "unused_session_lifetime_ms", id="lifetime-negative"),
    pytest.param({"unused_session_lifetime_ms": "1.5"}, "unused_session_lifetime_ms", id="lifetime-decimal"),
    pytest.param(
        {"unused_session_lifetime_ms": 10000, "check_unused_sessions_ms": 20000},
        "check_unused_sessions_ms",
        id="check-longer-than-lifetime",
    ),
    pytest.param({"memory_limit": "1GB"}, "memory_limit", id="memory-GB"),
    pytest.param({"memory_limit": "64Mi"}, "memory_limit", id="memory-below-128Mi"),
    pytest.param({"memory_limit": "512m"}, "memory_limit", id="memory-milli"),
    pytest.param({"replicas": 0}, "replicas", id="replicas-zero"),
    pytest.param({"allowed_origins": "*"}, "allowed_origins", id="origin-star"),
    pytest.param({"allowed_origins": "http://example.com"}, "allowed_origins", id="origin-scheme"),
    pytest.param({"allowed_origins": "example.com/app"}, "allowed_origins", id="origin-path"),
    pytest.param({"allowed_origins": "a b"}, "allowed_origins", id="origin-space"),
    pytest.param({"allowed_origins": "localhost:5006,[::1]:5006"}, "allowed_origins", id="origin-ipv6"),
    pytest.param({"author_email": "nope"}, "author_email", id="email-no-at"),
    pytest.param({"project_name": "Two\nLines"}, "project_name", id="name-newline"),
    pytest.param({"project_name": "!!!"}, "project_name", id="name-without-letters"),
    pytest.param({"project_name": "Test"}, "project_name", id="name-giving-a-stdlib-package"),
]


def assert_no_project_left(tmpdir: Any) -> None:
    """pytest-cookies bakes into ``<tmpdir>/cookies/bakeNN``; none of them may hold anything."""
    cookies_dir = Path(str(tmpdir)) / "cookies"
    leftovers = [path for bake in cookies_dir.iterdir() for path in bake.iterdir()]
    assert leftovers == []


@pytest.mark.parametrize(("extra_context", "field"), BAD_BAKES)
def test_bad_answer_stops_the_bake(
    cookies: Any, tmpdir: Any, capfd: pytest.CaptureFixture[str], extra_context: dict[str, Any], field: str
) -> None:
    result = cookies.bake(extra_context=extra_context)
    err = capfd.readouterr().err
    assert result.exit_code != 0
    assert isinstance(result.exception, FailedHookException)
    assert result.project_path is None
    assert f"ERROR: {field}: got " in err
    assert_no_project_left(tmpdir)


def test_unknown_python_version_is_refused_by_cookiecutter(cookies: Any, tmpdir: Any) -> None:
    """A choice variable is checked by cookiecutter itself, before the hook runs."""
    result = cookies.bake(extra_context={"python_version": "3.9"})
    assert result.exit_code != 0
    assert result.project_path is None
    assert "python_version" in str(result.exception)
    assert_no_project_left(tmpdir)


@pytest.fixture(scope="module")
def hostile_project(cookies_session: Any) -> Path:
    """One bake with valid answers full of quotes, backslashes, non-ASCII and emoji."""
    result = cookies_session.bake(
        extra_context={
            "project_name": HOSTILE_NAME,
            "project_slug": "hostile-board",
            "package_name": "hostile_board",
            "description": HOSTILE_DESCRIPTION,
            "author_name": HOSTILE_AUTHOR,
        }
    )
    assert result.exit_code == 0, result.exception
    assert result.exception is None
    return result.project_path


def test_hostile_names_survive_in_pyproject(hostile_project: Path) -> None:
    pyproject = tomllib.loads((hostile_project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["name"] == "hostile-board"
    assert pyproject["project"]["description"] == HOSTILE_DESCRIPTION
    assert pyproject["project"]["authors"][0]["name"] == HOSTILE_AUTHOR


def test_hostile_names_survive_in_settings(hostile_project: Path) -> None:
    path = hostile_project / "src" / "hostile_board" / "server" / "settings.py"
    settings = runpy.run_path(str(path), run_name="hostile_board.server.settings")
    assert settings["PROJECT_NAME"] == HOSTILE_NAME
    assert settings["ENV_PREFIX"] == "HOSTILE_BOARD_"


def test_hostile_names_survive_in_replay_record(hostile_project: Path) -> None:
    replay = hostile_project / ".cookiecutter-replay.json"
    assert replay.exists(), "the template must record its answers in .cookiecutter-replay.json"
    record = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    assert record["project_name"] == HOSTILE_NAME
    assert record["description"] == HOSTILE_DESCRIPTION
