"""Tests for ``hooks/post_gen_project.py``: each check catches the breakage it exists for.

The default project is baked once; every test breaks its own copy of it and calls one check
function of the (unrendered) hook module directly, so a failure points at a single check.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hook_loading import load_hook

post_gen = load_hook("post_gen_project")

LIFETIME = 300000
CHECK = 60000


@pytest.fixture(scope="module")
def baked(cookies_session: Any) -> tuple[Path, dict[str, Any]]:
    """The default project (baked once) and the answers it was baked with."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    assert result.exception is None
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


def settings_path(project: Path, answers: dict[str, Any]) -> Path:
    """Where the rendered settings module lives."""
    return project / "src" / answers["package_name"] / "settings.py"


def test_default_answers_are_the_expected_timeouts(answers: dict[str, Any]) -> None:
    assert int(answers["unused_session_lifetime_ms"]) == LIFETIME
    assert int(answers["check_unused_sessions_ms"]) == CHECK


def test_unrendered_module_imports_with_empty_answers() -> None:
    assert post_gen.ANSWERS == {}


# ---------------------------------------------------------------------------------------------
# The pristine copy passes everything
# ---------------------------------------------------------------------------------------------


def test_pristine_copy_has_no_problems(project: Path, answers: dict[str, Any]) -> None:
    assert post_gen.check_python_compiles(project) == []
    assert post_gen.check_structured_files(project) == []
    assert post_gen.check_no_template_leftovers(project, answers) == []
    assert post_gen.check_timeouts_agree(project, answers) == []
    assert post_gen.check_memory_limits(project, answers) == []
    assert post_gen.check_secret_key(project) == []


def test_main_returns_0_on_pristine_copy(
    project: Path, answers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert post_gen.main(answers, project) == 0
    assert capsys.readouterr().err == ""


def test_main_returns_1_and_prints_each_problem(
    project: Path, answers: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "bad.py").write_text("def broken(:\n", encoding="utf-8")
    (project / "bad.json").write_text("{", encoding="utf-8")
    assert post_gen.main(answers, project) == 1
    err = capsys.readouterr().err
    assert "ERROR: bad.py: does not compile" in err
    assert "ERROR: bad.json: is not valid JSON" in err


def test_baked_project_replay_record_holds_no_local_paths(baked: tuple[Path, dict[str, Any]]) -> None:
    replay = baked[0] / ".cookiecutter-replay.json"
    assert replay.exists(), "the template must record its answers in .cookiecutter-replay.json"
    record = json.loads(replay.read_text(encoding="utf-8"))["cookiecutter"]
    assert set(record).isdisjoint({"_output_dir", "_repo_dir", "_checkout", "_template"})
    assert record["project_slug"] == "bokeh-dashboard"


# ---------------------------------------------------------------------------------------------
# Each check on a broken copy
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
    problems = post_gen.check_python_compiles(project)
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
    problems = post_gen.check_structured_files(project)
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
    problems = post_gen.check_no_template_leftovers(project, answers)
    assert len(problems) == 1
    assert problems[0].startswith(f"{name}: unrendered template markup")


def test_leftover_message_gives_the_line(project: Path, answers: dict[str, Any]) -> None:
    (project / "notes.md").write_text("one\ntwo\n{{ x }}\n", encoding="utf-8")
    assert post_gen.check_no_template_leftovers(project, answers) == [
        "notes.md: unrendered template markup '{{' on line 3"
    ]


def test_leftover_check_skips_binary_git_and_github(project: Path, answers: dict[str, Any]) -> None:
    (project / "image.bin").write_bytes(b"\x89PNG\0{{ not text }}")
    (project / "latin1.txt").write_bytes("caf\xe9 {{ x }}".encode("latin-1"))
    (project / ".git").mkdir()
    (project / ".git" / "COMMIT_EDITMSG").write_text("{{ anything }}", encoding="utf-8")
    workflow = project / ".github" / "workflows" / "ci.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text("python-version: ${{ matrix.python }}\n", encoding="utf-8")
    assert post_gen.check_no_template_leftovers(project, answers) == []


def test_copy_without_render_files_are_not_leftovers(project: Path, answers: dict[str, Any]) -> None:
    template = project / "src" / "pkg" / "templates" / "index.html"
    template.parent.mkdir(parents=True)
    template.write_text("{% extends base %}{{ plot_div }}", encoding="utf-8")
    answers["_copy_without_render"] = ["{{cookiecutter.project_slug}}/src/*/templates/*.html"]
    assert post_gen.check_no_template_leftovers(project, answers) == []


def test_changed_lifetime_in_settings_is_reported(project: Path, answers: dict[str, Any]) -> None:
    path = settings_path(project, answers)
    source = path.read_text(encoding="utf-8")
    edited, count = re.subn(r'("unused_session_lifetime_ms":\s*)\d+', r"\g<1>1234", source)
    assert count == 1
    path.write_text(edited, encoding="utf-8")
    problems = post_gen.check_timeouts_agree(project, answers)
    assert len(problems) == 1
    assert problems[0].startswith(f"src/{answers['package_name']}/settings.py: ")
    assert "1234" in problems[0]
    assert str(LIFETIME) in problems[0]


def test_settings_without_baked_literal_is_reported(project: Path, answers: dict[str, Any]) -> None:
    settings_path(project, answers).write_text("X = 1\n", encoding="utf-8")
    (problem,) = post_gen.check_timeouts_agree(project, answers)
    assert "literal" in problem


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
    assert post_gen.check_timeouts_agree(project, answers) == []


def test_timeouts_in_dockerfile_disagree(project: Path, answers: dict[str, Any]) -> None:
    (project / "Dockerfile").write_text(
        "ENV BOKEH_DASHBOARD_CHECK_UNUSED_SESSIONS_MS=5\n"
        'CMD ["bokeh", "serve", "--unused-session-lifetime", "1000", "--check-unused-sessions", "abc"]\n'
        "CMD bokeh serve --unused-session-lifetime=2000\n",
        encoding="utf-8",
    )
    problems = post_gen.check_timeouts_agree(project, answers)
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
    assert post_gen.check_timeouts_agree(project, answers) == []


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
    problems = post_gen.check_timeouts_agree(project, answers)
    assert len(problems) == 3
    assert any(p.startswith("k8s/base/configmap.yaml: ") and "'111'" in p for p in problems)
    assert any(p.startswith("k8s/base/deployment.yml: ") and "222" in p for p in problems)
    assert any(p.startswith("k8s/base/deployment.yml: ") and "'333'" in p for p in problems)


# ---------------------------------------------------------------------------------------------
# remove_disabled_parts
# ---------------------------------------------------------------------------------------------


def make_optional_parts(root: Path) -> None:
    """The files each yes/no answer controls."""
    for name in ("k8s/x.yaml", "k8s/secret.yaml", "deploy/nginx.conf"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("a: 1\n", encoding="utf-8")


def test_disabled_parts_are_removed(tmp_path: Path) -> None:
    make_optional_parts(tmp_path)
    answers = {"include_kubernetes": False, "include_nginx": "no", "signed_sessions": False}
    post_gen.remove_disabled_parts(tmp_path, answers)
    assert not (tmp_path / "k8s").exists()
    assert not (tmp_path / "deploy").exists()


def test_enabled_parts_are_kept(tmp_path: Path) -> None:
    make_optional_parts(tmp_path)
    answers = {"include_kubernetes": True, "include_nginx": "yes", "signed_sessions": True}
    assert post_gen.remove_disabled_parts(tmp_path, answers) == []
    for name in ("k8s/x.yaml", "k8s/secret.yaml", "deploy/nginx.conf"):
        assert (tmp_path / name).is_file()


def test_unsigned_sessions_drop_only_the_secret(tmp_path: Path) -> None:
    make_optional_parts(tmp_path)
    (tmp_path / "deploy" / "compose.yaml").write_text("a: 1\n", encoding="utf-8")
    answers = {"include_kubernetes": True, "include_nginx": False, "signed_sessions": False}
    assert post_gen.remove_disabled_parts(tmp_path, answers) == ["k8s/secret.yaml", "deploy/nginx.conf"]
    assert (tmp_path / "k8s" / "x.yaml").is_file()
    assert (tmp_path / "deploy" / "compose.yaml").is_file()


def test_absent_parts_are_fine(tmp_path: Path) -> None:
    answers = {"include_kubernetes": False, "include_nginx": False, "signed_sessions": False}
    assert post_gen.remove_disabled_parts(tmp_path, answers) == []


def test_replay_record_loses_local_paths(tmp_path: Path) -> None:
    context = {
        "project_name": "Ö 📈",
        "_output_dir": "/home/me/out",
        "_repo_dir": "/home/me/template",
        "_checkout": None,
        "_template": "/home/me/template",
    }
    replay = tmp_path / ".cookiecutter-replay.json"
    replay.write_text(json.dumps({"cookiecutter": context}), encoding="utf-8")
    post_gen.remove_disabled_parts(tmp_path, {"include_kubernetes": True, "include_nginx": True})
    assert json.loads(replay.read_text(encoding="utf-8")) == {"cookiecutter": {"project_name": "Ö 📈"}}


def test_replay_record_keeps_remote_template(tmp_path: Path) -> None:
    replay = tmp_path / ".cookiecutter-replay.json"
    context = {"_template": "https://github.com/org/template.git", "_repo_dir": "/tmp/x"}
    replay.write_text(json.dumps({"cookiecutter": context}), encoding="utf-8")
    post_gen.remove_disabled_parts(tmp_path, {})
    record = json.loads(replay.read_text(encoding="utf-8"))
    assert record == {"cookiecutter": {"_template": "https://github.com/org/template.git"}}


def test_switched_off_parts_are_absent_after_a_real_bake(cookies: Any) -> None:
    result = cookies.bake(extra_context={"include_kubernetes": "no", "include_nginx": "no"})
    assert result.exit_code == 0, result.exception
    assert not (result.project_path / "k8s").exists()
    assert not (result.project_path / "deploy" / "nginx.conf").exists()


# ---------------------------------------------------------------------------------------------
# The baked Dockerfile, memory settings in k8s/, the session-signing key
# ---------------------------------------------------------------------------------------------


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
    problems = post_gen.check_timeouts_agree(project, answers)
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
    assert post_gen.quantity_bytes(value) == expected


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
    assert post_gen.check_memory_limits(project, answers) == []


def test_memory_request_above_limit_is_reported(project: Path, answers: dict[str, Any]) -> None:
    (project / "k8s" / "deployment.yaml").write_text(
        deployment({"memory": "2Gi"}, {"memory": "1Gi"}), encoding="utf-8"
    )
    assert post_gen.check_memory_limits(project, answers) == [
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
    (problem,) = post_gen.check_memory_limits(project, answers)
    assert problem.startswith("k8s/deployment.yaml: container 'server'")
    assert expected in problem


@pytest.mark.parametrize(
    ("soft_mb", "ok"),
    [("819", True), ("0", True), ("1023", True), ("1024", False), ("4096", False), ("lots", False)],
)
def test_soft_limit_must_be_below_the_limit(
    project: Path, answers: dict[str, Any], soft_mb: str, ok: bool
) -> None:
    configmap = project / "k8s" / "configmap.yaml"
    text, count = re.subn(
        r'(_MEMORY_SOFT_LIMIT_MB:\s*)"\d+"', rf'\g<1>"{soft_mb}"', configmap.read_text("utf-8")
    )
    assert count == 1
    configmap.write_text(text, encoding="utf-8")
    problems = post_gen.check_memory_limits(project, answers)
    if ok:
        assert problems == []
    else:
        assert len(problems) == 1
        assert problems[0].startswith("k8s/configmap.yaml: BOKEH_DASHBOARD_MEMORY_SOFT_LIMIT_MB is ")


def test_soft_limit_in_env_is_compared_with_the_answer_without_limits(tmp_path: Path) -> None:
    (tmp_path / "k8s").mkdir()
    (tmp_path / "k8s" / "pod.yaml").write_text(
        "kind: Pod\nspec:\n  containers:\n    - name: a\n      env:\n"
        "        - {name: X_MEMORY_SOFT_LIMIT_MB, value: '600'}\n",
        encoding="utf-8",
    )
    # The container has no limit (reported), so the soft limit is compared with the answer.
    problems = post_gen.check_memory_limits(tmp_path, {"memory_limit": "512Mi"})
    assert problems == [
        "k8s/pod.yaml: container 'a' has no memory limit",
        "k8s/pod.yaml: env X_MEMORY_SOFT_LIMIT_MB is 600 MiB, not below the memory limit 512Mi",
    ]
    assert post_gen.check_memory_limits(tmp_path, {"memory_limit": "1Gi"}) == [
        "k8s/pod.yaml: container 'a' has no memory limit"
    ]


def test_no_k8s_means_no_memory_problems(tmp_path: Path) -> None:
    assert post_gen.check_memory_limits(tmp_path, {"memory_limit": "1Gi"}) == []


SECRET = 'kind: Secret\nstringData:\n  BOKEH_SECRET_KEY: "@GENERATED_SECRET_KEY@"\n'


def test_secret_key_is_generated_once(tmp_path: Path) -> None:
    secret = tmp_path / "k8s" / "secret.yaml"
    secret.parent.mkdir()
    secret.write_text(SECRET, encoding="utf-8")
    assert post_gen.check_secret_key(tmp_path) == [
        "k8s/secret.yaml: the key placeholder '@GENERATED_SECRET_KEY@' was not replaced"
    ]
    assert post_gen.fill_secret_key(tmp_path) is True
    key = yaml.safe_load(secret.read_text(encoding="utf-8"))["stringData"]["BOKEH_SECRET_KEY"]
    assert len(key) >= 32 and key != post_gen.SECRET_PLACEHOLDER
    assert post_gen.check_secret_key(tmp_path) == []
    assert post_gen.fill_secret_key(tmp_path) is False  # nothing left to replace: the key stays
    assert yaml.safe_load(secret.read_text(encoding="utf-8"))["stringData"]["BOKEH_SECRET_KEY"] == key


def test_short_or_missing_secret_key_is_reported(tmp_path: Path) -> None:
    secret = tmp_path / "k8s" / "secret.yaml"
    secret.parent.mkdir()
    secret.write_text(SECRET, encoding="utf-8")
    post_gen.fill_secret_key(tmp_path, make_key=lambda: "short")
    assert post_gen.check_secret_key(tmp_path) == [
        "k8s/secret.yaml: BOKEH_SECRET_KEY is shorter than 32 characters"
    ]
    secret.write_text("kind: Secret\nstringData: {OTHER: x}\n", encoding="utf-8")
    assert post_gen.check_secret_key(tmp_path) == ["k8s/secret.yaml: no BOKEH_SECRET_KEY entry"]


def test_two_signed_bakes_get_different_keys(cookies: Any) -> None:
    keys = []
    for _ in range(2):
        result = cookies.bake(extra_context={"signed_sessions": True})
        assert result.exit_code == 0, result.exception
        secret = yaml.safe_load((result.project_path / "k8s" / "secret.yaml").read_text(encoding="utf-8"))
        keys.append(secret["stringData"]["BOKEH_SECRET_KEY"])
    assert keys[0] != keys[1]
    assert all(len(key) >= 32 for key in keys)
