"""Tests for ``tests/rendered_checks.py``: each check passes a pristine bake and catches its defect.

The default project is baked once; every test breaks its own copy of it (or builds a small
synthetic tree) and calls one check, so a failure points at a single check. Every check has at
least one negative test: a tree with the defect must be reported.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import rendered_checks as checks
import yaml

LIFETIME = 300000
CHECK = 60000


@pytest.fixture(scope="module")
def baked(cookies_session: Any) -> tuple[Path, dict[str, Any]]:
    """The default project (baked once) and the answers it was baked with."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    return result.project_path, dict(result.context)


@pytest.fixture
def answers(baked: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """A fresh copy of the default answers."""
    return dict(baked[1])


@pytest.fixture
def project(baked: tuple[Path, dict[str, Any]], tmp_path: Path) -> Path:
    """A private copy of the baked project that a test may break."""
    copy = tmp_path / "project"
    shutil.copytree(baked[0], copy)
    return copy


def test_default_answers_are_the_expected_timeouts(answers: dict[str, Any]) -> None:
    assert int(answers["unused_session_lifetime_ms"]) == LIFETIME
    assert int(answers["check_unused_sessions_ms"]) == CHECK


def test_pristine_copy_has_no_problems(project: Path, answers: dict[str, Any]) -> None:
    assert checks.check_python_compiles(project) == []
    assert checks.check_structured_files(project) == []
    assert checks.check_no_template_leftovers(project, answers) == []
    assert checks.check_timeouts_agree(project, answers) == []
    assert checks.check_memory_limits(project, answers) == []
    assert checks.check_secret_key(project, answers) == []
    assert checks.project_problems(project, answers) == []


def test_project_problems_collects_every_check(project: Path, answers: dict[str, Any]) -> None:
    (project / "bad.py").write_text("def broken(:\n", encoding="utf-8")
    (project / "bad.json").write_text("{", encoding="utf-8")
    (project / "notes.md").write_text("{{ x }}\n", encoding="utf-8")
    (project / "k8s" / "secrets.env").write_text("BOKEH_SECRET_KEY=x\n", encoding="utf-8")
    problems = checks.project_problems(project, answers)
    assert [problem.split(":")[0] for problem in problems] == [
        "bad.py",
        "bad.json",
        "notes.md",
        "k8s/secrets.env",
    ]


# ---------------------------------------------------------------------------------------------
# Compile, parse, leftovers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "source"),
    [
        pytest.param("bad.py", "def broken(:\n    pass\n", id="syntax-error"),
        pytest.param("src/deep/bad.py", "if True:\nprint('no indent')\n", id="indentation-error"),
        pytest.param("nul.py", "x = 1\0\n", id="nul-byte"),
    ],
)
def test_python_that_does_not_compile_is_reported(project: Path, name: str, source: str) -> None:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    problems = checks.check_python_compiles(project)
    assert len(problems) == 1
    assert problems[0].startswith(f"{name}: does not compile")


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        pytest.param("k8s/broken.yaml", "a: [1, 2\n", "YAML", id="yaml-unclosed"),
        pytest.param("broken.yml", "a: b\n  c: d\n", "YML", id="yml-bad-indent"),
        pytest.param("multi.yaml", "a: 1\n---\nb: [\n", "YAML", id="yaml-second-document"),
        pytest.param("broken.toml", "[project\nname = 1\n", "TOML", id="toml-unclosed-table"),
        pytest.param("dup.toml", "a = 1\na = 2\n", "TOML", id="toml-duplicate-key"),
        pytest.param("broken.json", '{"a": 1,}', "JSON", id="json-trailing-comma"),
    ],
)
def test_unparseable_structured_file_is_reported(project: Path, name: str, text: str, kind: str) -> None:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    problems = checks.check_structured_files(project)
    assert len(problems) == 1
    assert problems[0].startswith(f"{name}: is not valid {kind}")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        pytest.param("notes.md", "Port: {{ cookiecutter.port }}\n", id="expression"),
        pytest.param("deep/dir/x.txt", "a\n{% if cookiecutter.include_nginx %}\n", id="statement"),
        pytest.param("c.cfg", "{# a Jinja comment #}\n", id="comment"),
        pytest.param(".github/workflows/ci.yml", "run: echo {{ cookiecutter.port }}\n", id="github-bare"),
    ],
)
def test_template_leftover_is_reported(project: Path, answers: dict[str, Any], name: str, text: str) -> None:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    problems = checks.check_no_template_leftovers(project, answers)
    assert len(problems) == 1
    assert problems[0].startswith(f"{name}: unrendered template markup")


def test_leftover_message_gives_the_line(project: Path, answers: dict[str, Any]) -> None:
    (project / "notes.md").write_text("one\ntwo\n{{ x }}\n", encoding="utf-8")
    assert checks.check_no_template_leftovers(project, answers) == [
        "notes.md: unrendered template markup '{{' on line 3"
    ]


def test_leftover_check_skips_binary_git_and_github(project: Path, answers: dict[str, Any]) -> None:
    (project / "image.bin").write_bytes(b"\x89PNG\0{{ not text }}")
    (project / "latin1.txt").write_bytes("caf\xe9 {{ x }}".encode("latin-1"))
    (project / ".git").mkdir()
    (project / ".git" / "COMMIT_EDITMSG").write_text("{{ anything }}", encoding="utf-8")
    workflow = project / ".github" / "workflows" / "ci.yml"
    workflow.parent.mkdir(parents=True, exist_ok=True)  # baked projects have one
    workflow.write_text("python-version: ${{ matrix.python }}\n", encoding="utf-8")
    assert checks.check_no_template_leftovers(project, answers) == []


def test_copy_without_render_files_are_not_leftovers(project: Path, answers: dict[str, Any]) -> None:
    template = project / "src" / "pkg" / "templates" / "index.html"
    template.parent.mkdir(parents=True)
    template.write_text("{% extends base %}{{ plot_div }}", encoding="utf-8")
    answers["_copy_without_render"] = ["{{cookiecutter.project_slug}}/src/*/templates/*.html"]
    assert checks.check_no_template_leftovers(project, answers) == []


def test_timeouts_in_dockerfile_agree(project: Path, answers: dict[str, Any]) -> None:
    (project / "Dockerfile").write_text(
        "# --unused-session-lifetime is set below\n"
        f"ENV BOKEH_DASHBOARD_UNUSED_SESSION_LIFETIME_MS={LIFETIME} \\\n"
        f"    BOKEH_DASHBOARD_CHECK_UNUSED_SESSIONS_MS {CHECK}\n"
        f'CMD ["bokeh", "serve", "--unused-session-lifetime", "{LIFETIME}",\n'
        f'     "--check-unused-sessions={CHECK}", "--port", "$PORT"]\n'
        f"RUN serve --unused-session-lifetime {LIFETIME} --check-unused-sessions \\\n    {CHECK}\n"
        'RUN serve --check-unused-sessions "$INTERVAL"\n',
        encoding="utf-8",
    )
    assert checks.check_timeouts_agree(project, answers) == []


def test_timeouts_in_dockerfile_disagree(project: Path, answers: dict[str, Any]) -> None:
    (project / "Dockerfile").write_text(
        "ENV BOKEH_DASHBOARD_CHECK_UNUSED_SESSIONS_MS=5\n"
        'CMD ["bokeh", "serve", "--unused-session-lifetime", "1000", "--check-unused-sessions", "abc"]\n'
        "CMD bokeh serve --unused-session-lifetime=2000\n",
        encoding="utf-8",
    )
    problems = checks.check_timeouts_agree(project, answers)
    assert all(problem.startswith("Dockerfile: ") for problem in problems)
    found = " ".join(problems)
    for value in ("'5'", "'1000'", "'abc'", "'2000'"):
        assert value in found
    assert len(problems) == 4


K8S_AGREE = f"""\
apiVersion: v1
kind: ConfigMap
metadata: {{name: dash}}
data:
  BOKEH_DASHBOARD_UNUSED_SESSION_LIFETIME_MS: "{LIFETIME}"
  BOKEH_DASHBOARD_CHECK_UNUSED_SESSIONS_MS: "{CHECK}"
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: dash}}
spec:
  template:
    spec:
      containers:
        - name: app
          args: ["--unused-session-lifetime", "{LIFETIME}", "--check-unused-sessions={CHECK}"]
          command: ["sh", "-c", "exec serve --check-unused-sessions $(INTERVAL)"]
          env:
            - name: BOKEH_DASHBOARD_UNUSED_SESSION_LIFETIME_MS
              value: "{LIFETIME}"
            - name: BOKEH_DASHBOARD_CHECK_UNUSED_SESSIONS_MS
              valueFrom: {{configMapKeyRef: {{name: dash, key: BOKEH_DASHBOARD_CHECK_UNUSED_SESSIONS_MS}}}}
"""


def test_timeouts_in_kubernetes_agree(project: Path, answers: dict[str, Any]) -> None:
    (project / "k8s").mkdir(exist_ok=True)
    (project / "k8s" / "app.yaml").write_text(K8S_AGREE, encoding="utf-8")
    assert checks.check_timeouts_agree(project, answers) == []


def test_timeouts_in_kubernetes_disagree(project: Path, answers: dict[str, Any]) -> None:
    base = project / "k8s" / "base"
    base.mkdir(parents=True, exist_ok=True)
    (base / "configmap.yaml").write_text(
        "kind: ConfigMap\ndata:\n"
        "  X_UNUSED_SESSION_LIFETIME_MS: '111'\n  X_CHECK_UNUSED_SESSIONS_MS: 60000\n",
        encoding="utf-8",
    )
    (base / "deployment.yml").write_text(
        "kind: Deployment\nspec:\n  containers:\n    - args: [--check-unused-sessions, 222]\n"
        "      env:\n        - {name: X_UNUSED_SESSION_LIFETIME_MS, value: '333'}\n",
        encoding="utf-8",
    )
    problems = checks.check_timeouts_agree(project, answers)
    assert len(problems) == 3
    assert any(p.startswith("k8s/base/configmap.yaml: ") and "'111'" in p for p in problems)
    assert any(p.startswith("k8s/base/deployment.yml: ") and "222" in p for p in problems)
    assert any(p.startswith("k8s/base/deployment.yml: ") and "'333'" in p for p in problems)


def test_baked_dockerfile_timeouts_are_checked(project: Path, answers: dict[str, Any]) -> None:
    """The exec-form CMD of the real Dockerfile is read: changing a value there is reported."""
    dockerfile = project / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8")
    assert f'"--unused-session-lifetime", "{LIFETIME}"' in text
    assert f'"--check-unused-sessions", "{CHECK}"' in text
    dockerfile.write_text(
        text.replace(
            f'"--unused-session-lifetime", "{LIFETIME}"', '"--unused-session-lifetime", "15000"'
        ).replace(f'"--check-unused-sessions", "{CHECK}"', '"--check-unused-sessions", "17000"'),
        encoding="utf-8",
    )
    problems = checks.check_timeouts_agree(project, answers)
    assert len(problems) == 2, problems
    assert all(problem.startswith("Dockerfile: ") for problem in problems)
    assert "'15000'" in problems[0] and "'17000'" in problems[1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1Gi", 2**30),
        ("512Mi", 512 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("2G", 2 * 10**9),
        ("300000000", 300000000),
        (268435456, 2**28),
        ("1gi", None),
        ("1 Gi", None),
        ("", None),
        (True, None),
        (None, None),
    ],
)
def test_quantity_bytes(value: object, expected: int | None) -> None:
    assert checks.quantity_bytes(value) == expected


def deployment(requests: dict[str, str], limits: dict[str, str]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "dash"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "server", "resources": {"requests": requests, "limits": limits}}
                        ]
                    }
                }
            },
        }
    )


def test_baked_memory_settings_pass(project: Path, answers: dict[str, Any]) -> None:
    assert (project / "k8s" / "deployment.yaml").is_file()
    assert checks.check_memory_limits(project, answers) == []


def test_memory_request_above_limit_is_reported(project: Path, answers: dict[str, Any]) -> None:
    (project / "k8s" / "deployment.yaml").write_text(
        deployment({"memory": "2Gi"}, {"memory": "1Gi"}), encoding="utf-8"
    )
    assert checks.check_memory_limits(project, answers) == [
        "k8s/deployment.yaml: container 'server': memory request 2Gi is above the memory limit 1Gi"
    ]


@pytest.mark.parametrize(
    ("requests", "limits", "expected"),
    [
        pytest.param({"memory": "1Gi"}, {}, "has no memory limit", id="no-limit"),
        pytest.param({}, {"memory": "lots"}, "memory limit 'lots' is not a memory quantity", id="bad-limit"),
        pytest.param(
            {"memory": "1 Gi"}, {"memory": "1Gi"}, "memory request '1 Gi' is not a", id="bad-request"
        ),
    ],
)
def test_missing_or_unreadable_memory_is_reported(
    project: Path, answers: dict[str, Any], requests: dict[str, str], limits: dict[str, str], expected: str
) -> None:
    (project / "k8s" / "deployment.yaml").write_text(deployment(requests, limits), encoding="utf-8")
    (problem,) = checks.check_memory_limits(project, answers)
    assert problem.startswith("k8s/deployment.yaml: container 'server'")
    assert expected in problem


@pytest.mark.parametrize("setting", ["MEMORY_SOFT_LIMIT_MB", "ADMISSION_LIMIT_MB"])
@pytest.mark.parametrize(
    ("limit_mb", "ok"),
    [("819", True), ("0", True), ("1023", True), ("1024", False), ("4096", False), ("lots", False)],
)
def test_soft_and_admission_limits_must_be_below_the_limit(
    project: Path, answers: dict[str, Any], setting: str, limit_mb: str, ok: bool
) -> None:
    configmap = project / "k8s" / "configmap.yaml"
    text, count = re.subn(rf'(_{setting}:\s*)"\d+"', rf'\g<1>"{limit_mb}"', configmap.read_text("utf-8"))
    assert count == 1
    configmap.write_text(text, encoding="utf-8")
    problems = checks.check_memory_limits(project, answers)
    if ok:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problems[0].startswith(f"k8s/configmap.yaml: BOKEH_DASHBOARD_{setting} is ")


def test_soft_limit_in_env_is_compared_with_the_answer_without_limits(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "pod.yaml").write_text(
        "kind: Pod\nspec:\n  containers:\n    - name: a\n      env:\n"
        "        - {name: X_MEMORY_SOFT_LIMIT_MB, value: '600'}\n",
        encoding="utf-8",
    )
    # The container has no limit (reported), so the soft limit is compared with the answer.
    problems = checks.check_memory_limits(tmp_path, {"memory_limit": "512Mi"})
    assert problems == [
        "k8s/pod.yaml: container 'a' has no memory limit",
        "k8s/pod.yaml: env X_MEMORY_SOFT_LIMIT_MB is 600 MiB, not below the memory limit 512Mi",
    ]
    assert checks.check_memory_limits(tmp_path, {"memory_limit": "1Gi"}) == [
        "k8s/pod.yaml: container 'a' has no memory limit"
    ]


def test_no_k8s_means_no_memory_problems(tmp_path: Path) -> None:
    assert checks.check_memory_limits(tmp_path, {"memory_limit": "1Gi"}) == []


SECRET_TEMPLATE = "# generated\nBOKEH_SECRET_KEY={key}\n"
SIGNED = {"include_kubernetes": True, "signed_sessions": True}
LOGIN = {**SIGNED, "auth": "oidc", "package_name": "dash"}


def write_secret(root: Path, text: str) -> None:
    """Write ``k8s/secrets.env`` under ``root``."""
    (root / "k8s").mkdir(exist_ok=True)
    (root / "k8s" / "secrets.env").write_text(text, encoding="utf-8")


def test_generated_secret_key_passes(tmp_path: Path) -> None:
    write_secret(tmp_path, SECRET_TEMPLATE.format(key="k" * 32))
    assert checks.check_secret_key(tmp_path, SIGNED) == []
    write_secret(
        tmp_path, f"BOKEH_SECRET_KEY={'k' * 32}\nBOKEH_COOKIE_SECRET={'c' * 32}\nDASH_OIDC_CLIENT_SECRET=\n"
    )
    assert checks.check_secret_key(tmp_path, LOGIN) == []


@pytest.mark.parametrize(
    ("text", "answers", "expected"),
    [
        pytest.param(
            SECRET_TEMPLATE.format(key=checks.SECRET_PLACEHOLDER),
            SIGNED,
            "k8s/secrets.env: the placeholder '@GENERATED_SECRET@' was not replaced",
            id="placeholder",
        ),
        pytest.param(
            SECRET_TEMPLATE.format(key="k" * 31),
            SIGNED,
            "k8s/secrets.env: BOKEH_SECRET_KEY is shorter than 32 characters",
            id="short",
        ),
        pytest.param("OTHER=x\n", SIGNED, "k8s/secrets.env: no BOKEH_SECRET_KEY entry", id="no-entry"),
        pytest.param(
            f"BOKEH_SECRET_KEY={'k' * 32}\nDASH_OIDC_CLIENT_SECRET=\n",
            LOGIN,
            "k8s/secrets.env: no BOKEH_COOKIE_SECRET entry",
            id="login-without-cookie-secret",
        ),
        pytest.param(
            f"BOKEH_SECRET_KEY={'k' * 32}\nBOKEH_COOKIE_SECRET={'k' * 32}\nDASH_OIDC_CLIENT_SECRET=\n",
            LOGIN,
            "k8s/secrets.env: two secrets have the same value",
            id="same-value",
        ),
        pytest.param(
            f"BOKEH_SECRET_KEY={'k' * 32}\nBOKEH_COOKIE_SECRET={'c' * 32}\n",
            LOGIN,
            "k8s/secrets.env: no DASH_OIDC_CLIENT_SECRET line",
            id="no-client-secret-line",
        ),
    ],
)
def test_bad_secret_key_is_reported(
    tmp_path: Path, text: str, answers: dict[str, Any], expected: str
) -> None:
    write_secret(tmp_path, text)
    assert checks.check_secret_key(tmp_path, answers) == [expected]


def test_missing_secret_with_signed_sessions_is_reported(tmp_path: Path) -> None:
    assert checks.check_secret_key(tmp_path, SIGNED) == [
        "k8s/secrets.env: missing although signed_sessions is on"
    ]


def test_secret_without_signed_sessions_is_reported(tmp_path: Path) -> None:
    write_secret(tmp_path, SECRET_TEMPLATE.format(key="k" * 32))
    unsigned = {"include_kubernetes": True, "signed_sessions": "no"}
    assert checks.check_secret_key(tmp_path, unsigned) == [
        "k8s/secrets.env: present although sessions are not signed"
    ]
    (tmp_path / "k8s" / "secrets.env").unlink()
    assert checks.check_secret_key(tmp_path, unsigned) == []


# ---------------------------------------------------------------------------------------------
# src/<package>/server/answers.json (synthetic trees: the layout is not on this branch yet)
# ---------------------------------------------------------------------------------------------

HOSTILE_NAME = 'Ünïcødé "Quoted" \\ Back\'slash 📈 Board'
ANSWERS = {
    "project_name": HOSTILE_NAME,
    "package_name": "hostile_board",
    "port": "5006",
    "allowed_origins": "localhost:5006,dash.example.com",
    "unused_session_lifetime_ms": str(LIFETIME),
    "check_unused_sessions_ms": str(CHECK),
    "memory_limit": "1Gi",
    "auth": "none",
}
GOOD_FILE = {
    "project_name": HOSTILE_NAME,
    "port": 5006,
    "allowed_origins": "localhost:5006,dash.example.com",
    "unused_session_lifetime_ms": LIFETIME,
    "check_unused_sessions_ms": CHECK,
    "memory_limit": "1Gi",
    "auth": "none",
}
ANSWERS_PATH = "src/hostile_board/server/answers.json"


def write_answers_file(root: Path, content: object) -> Path:
    """Write ``content`` (JSON-encoded unless it is already text) as the answers file."""
    path = root / ANSWERS_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    path.write_text(text, encoding="utf-8")
    return path


def test_answers_file_path_is_in_the_server_package(tmp_path: Path) -> None:
    assert checks.answers_file_path(tmp_path, ANSWERS) == tmp_path / ANSWERS_PATH


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(GOOD_FILE, id="numbers"),
        pytest.param(
            {**GOOD_FILE, "port": "5006", "unused_session_lifetime_ms": "300000"}, id="digit-strings"
        ),
        pytest.param({**GOOD_FILE, "extra": [1, 2]}, id="extra-keys"),
    ],
)
def test_answers_file_holding_the_answers_passes(tmp_path: Path, content: dict[str, Any]) -> None:
    write_answers_file(tmp_path, content)
    assert checks.check_answers_file(tmp_path, ANSWERS) == []


def test_missing_answers_file_is_a_problem(tmp_path: Path) -> None:
    (problem,) = checks.check_answers_file(tmp_path, ANSWERS)
    assert problem.startswith(f"{ANSWERS_PATH}: missing")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param('{"port": 5006,', "is not valid JSON", id="broken-json"),
        pytest.param([GOOD_FILE], "is not a JSON object", id="a-list"),
        pytest.param("null", "is not a JSON object", id="null"),
    ],
)
def test_unreadable_answers_file_is_a_problem(tmp_path: Path, content: object, expected: str) -> None:
    write_answers_file(tmp_path, content)
    (problem,) = checks.check_answers_file(tmp_path, ANSWERS)
    assert problem.startswith(f"{ANSWERS_PATH}: {expected}")


@pytest.mark.parametrize("key", [*checks.ANSWERS_FILE_NUMBERS, *checks.ANSWERS_FILE_TEXTS])
def test_answers_file_lacking_a_key_is_a_problem(tmp_path: Path, key: str) -> None:
    write_answers_file(tmp_path, {name: value for name, value in GOOD_FILE.items() if name != key})
    assert checks.check_answers_file(tmp_path, ANSWERS) == [f"{ANSWERS_PATH}: lacks {key!r}"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param("unused_session_lifetime_ms", 1234, id="lifetime"),
        pytest.param("check_unused_sessions_ms", 17000, id="check-interval"),
        pytest.param("unused_session_lifetime_ms", "300000ms", id="lifetime-not-a-number"),
        pytest.param("check_unused_sessions_ms", True, id="check-interval-bool"),
        pytest.param("port", 8080, id="port"),
        pytest.param("project_name", HOSTILE_NAME.replace("\\", ""), id="name-lost-backslash"),
        pytest.param("allowed_origins", "localhost:5006", id="origins"),
        pytest.param("memory_limit", "1G", id="memory"),
    ],
)
def test_answers_file_disagreeing_with_an_answer_is_a_problem(
    tmp_path: Path, key: str, value: object
) -> None:
    write_answers_file(tmp_path, {**GOOD_FILE, key: value})
    assert checks.check_answers_file(tmp_path, ANSWERS) == [
        f"{ANSWERS_PATH}: {key} is {value!r} but the answer is {ANSWERS[key]!r}"
    ]
