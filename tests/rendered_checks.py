"""Checks of a baked project's files, run by the template's tests on every bake they make.

These used to run in the post-gen hook on every user's machine; they check the template, not the
user's answers, so they belong in the template's test suite. Each ``check_*`` function takes the
project root (and the answers it was baked with where it needs them) and returns a list of
problems, each ``"<file>: <what is wrong>"``; an empty list means the check passed.
``project_problems`` runs all of them except ``check_answers_file`` (see its docstring).
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import yaml
from hook_loading import load_hook

PRE_GEN = load_hook("pre_gen_project")

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

SKIPPED_DIRS = frozenset({".git", "__pycache__"})
#: Jinja openers, built so this file never looks like a template itself.
JINJA_MARKERS = ("{" + "{", "{" + "%", "{" + "#")
#: GitHub Actions expressions look like Jinja but belong in rendered workflow files.
GITHUB_EXPRESSION = "$" + "{" + "{"
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on"})

#: (answer key, Bokeh command-line flag, suffix of the environment variable overriding it)
TIMEOUTS = (
    ("unused_session_lifetime_ms", "--unused-session-lifetime", "UNUSED_SESSION_LIFETIME_MS"),
    ("check_unused_sessions_ms", "--check-unused-sessions", "CHECK_UNUSED_SESSIONS_MS"),
)
#: Where the rendered project keeps its baked answers, relative to ``src/<package_name>/``.
ANSWERS_FILE = "server/answers.json"
#: Keys ``answers.json`` must hold; the numbers are compared as numbers, the rest as text.
ANSWERS_FILE_NUMBERS = ("port", "unused_session_lifetime_ms", "check_unused_sessions_ms")
ANSWERS_FILE_TEXTS = ("project_name", "allowed_origins", "memory_limit", "auth")
#: What ``k8s/secrets.env`` holds until the post-gen hook writes the generated secrets.
SECRET_PLACEHOLDER = "@GENERATED_SECRET@"
SECRET_FILE = "k8s/secrets.env"
#: Bokeh warns about keys shorter than this (``bokeh/settings.py``).
MIN_SECRET_KEY_LENGTH = 32
#: Settings in MiB that must stay below the container's memory limit: the guard's soft limit and
#: the admission limit (no new session past it).
LIMIT_SUFFIXES = ("MEMORY_SOFT_LIMIT_MB", "ADMISSION_LIMIT_MB")
#: Kinds whose pods are described by ``spec.template.spec`` (a Pod's own spec is ``spec``).
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
_TOKEN = re.compile(r"""[^\s"',\[\]=\\]+""")
_WHOLE_NUMBER = re.compile(r"[0-9]+")


# ---------------------------------------------------------------------------------------------
# Walking the tree
# ---------------------------------------------------------------------------------------------


def is_on(answers: Mapping[str, object], key: str) -> bool:
    """Read a yes/no answer that may be a bool or a word such as ``"false"``."""
    value = answers.get(key, False)
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def relative(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` with forward slashes, for messages."""
    return path.relative_to(root).as_posix()


def iter_files(root: Path, suffixes: Iterable[str] | None = None) -> Iterator[Path]:
    """Every regular file under ``root`` (sorted, skipping ``.git`` and caches), optionally by suffix."""
    wanted = None if suffixes is None else tuple(suffixes)
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if SKIPPED_DIRS.intersection(parts) or not path.is_file() or path.is_symlink():
            continue
        if wanted is None or path.suffix in wanted:
            yield path


def read_text_file(path: Path) -> str | None:
    """The file's text, or ``None`` for binary (NUL bytes or not UTF-8) files."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def yaml_documents(path: Path) -> list[object]:
    """Every document of a YAML file; ``[]`` if it does not parse (``check_structured_files`` says so)."""
    try:
        return list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    except yaml.YAMLError:
        return []


def whole_number(value: object) -> int | None:
    """``value`` as an int if it is an int (not bool) or a string of ASCII digits, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if _WHOLE_NUMBER.fullmatch(text) else None


# ---------------------------------------------------------------------------------------------
# Files compile, parse, and hold no template markup
# ---------------------------------------------------------------------------------------------


def check_python_compiles(root: Path) -> list[str]:
    """Every ``*.py`` file compiles."""
    problems = []
    for path in iter_files(root, [".py"]):
        try:
            compile(path.read_bytes(), str(path), "exec")
        except SyntaxError as error:
            problems.append(f"{relative(root, path)}: does not compile: {error.msg} (line {error.lineno})")
        except ValueError as error:
            problems.append(f"{relative(root, path)}: does not compile: {error}")
    return problems


def parse_yaml_stream(text: str) -> None:
    """Parse every document of a YAML stream."""
    list(yaml.safe_load_all(text))


PARSERS = {".yaml": parse_yaml_stream, ".yml": parse_yaml_stream, ".toml": tomllib.loads, ".json": json.loads}


def check_structured_files(root: Path) -> list[str]:
    """Every YAML, TOML and JSON file parses."""
    problems = []
    for path in iter_files(root, PARSERS.keys()):
        try:
            PARSERS[path.suffix](path.read_text(encoding="utf-8"))
        except Exception as error:  # each parser raises its own error type
            reason = " ".join(str(error).split())
            problems.append(f"{relative(root, path)}: is not valid {path.suffix[1:].upper()}: {reason}")
    return problems


def copied_verbatim(rel: str, answers: Mapping[str, object]) -> bool:
    """True for files the template copies unrendered (``_copy_without_render``)."""
    patterns = answers.get("_copy_without_render") or []
    if not isinstance(patterns, list):
        return False
    for pattern in map(str, patterns):
        # Patterns are written relative to the template, i.e. starting with the project folder.
        candidates = [pattern, pattern.split("/", 1)[1]] if "/" in pattern else [pattern]
        if any(fnmatch.fnmatch(rel, candidate) for candidate in candidates):
            return True
    return False


def replay_answers_text(text: str) -> str:
    """The replay record without the template's private ``_`` keys (``_copy_without_render`` holds
    template paths by design); unparsable text is returned as is for the markers to be seen."""
    try:
        record = json.loads(text)
        answers = record["cookiecutter"]
    except (ValueError, KeyError, TypeError):
        return text
    if not isinstance(answers, dict):
        return text
    return json.dumps({key: value for key, value in answers.items() if not key.startswith("_")}, indent=1)


def check_no_template_leftovers(root: Path, answers: Mapping[str, object] | None = None) -> list[str]:
    """No Jinja opener is left in any text file.

    Exceptions: ``GITHUB_EXPRESSION`` in files under ``.github/`` (GitHub Actions) and files the
    template lists in ``_copy_without_render``.
    """
    problems = []
    for path in iter_files(root):
        rel = relative(root, path)
        text = read_text_file(path)
        if text is None or copied_verbatim(rel, answers or {}):
            continue
        if rel.startswith(".github/"):
            text = text.replace(GITHUB_EXPRESSION, "$")
        if rel == ".cookiecutter-replay.json":
            text = replay_answers_text(text)
        for number, line in enumerate(text.splitlines(), start=1):
            found = [marker for marker in JINJA_MARKERS if marker in line]
            if found:
                problems.append(f"{rel}: unrendered template markup {found[0]!r} on line {number}")
    return problems


# ---------------------------------------------------------------------------------------------
# The answers file and the idle-session timeouts
# ---------------------------------------------------------------------------------------------


def answers_file_path(root: Path, answers: Mapping[str, object]) -> Path:
    """Where the rendered project keeps its answers: ``src/<package_name>/server/answers.json``."""
    return root / "src" / str(answers.get("package_name", "")) / ANSWERS_FILE


def expected_timeouts(answers: Mapping[str, object]) -> tuple[dict[str, int], list[str]]:
    """The answered timeouts as ints, and a problem for each answer that is not a whole number."""
    expected: dict[str, int] = {}
    problems = []
    for key, _flag, _suffix in TIMEOUTS:
        number = whole_number(answers.get(key, ""))
        if number is None:
            problems.append(f"answers: {key} is {answers.get(key)!r}, not a whole number")
        else:
            expected[key] = number
    return expected, problems


def check_answers_file(root: Path, answers: Mapping[str, object]) -> list[str]:
    """``src/<package>/server/answers.json`` exists, is a JSON object and holds the answers.

    The timeouts and the port must equal the answers as numbers; ``project_name``,
    ``allowed_origins`` and ``memory_limit`` must equal them as text. A missing or unreadable
    file is a problem, never a pass: the server reads its defaults from this file.
    """
    path = answers_file_path(root, answers)
    where = relative(root, path)
    if not path.is_file():
        return [f"{where}: missing, so the baked answers (session timeouts included) cannot be checked"]
    try:
        baked = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        return [f"{where}: is not valid JSON: {error}"]
    if not isinstance(baked, dict):
        return [f"{where}: is not a JSON object"]
    problems = []
    for key in (*ANSWERS_FILE_NUMBERS, *ANSWERS_FILE_TEXTS):
        if key not in baked:
            problems.append(f"{where}: lacks {key!r}")
            continue
        numeric = key in ANSWERS_FILE_NUMBERS
        found = whole_number(baked[key]) if numeric else baked[key]
        wanted = whole_number(answers.get(key)) if numeric else answers.get(key)
        if found is None or found != wanted:
            problems.append(f"{where}: {key} is {baked[key]!r} but the answer is {answers.get(key)!r}")
    return problems


def compare_timeout(where: str, label: str, found: object, key: str, expected: int) -> str | None:
    """Problem text if ``found`` is not ``expected``; variable references (``$X``) are not checked."""
    text = str(found).strip()
    if text.startswith("$"):
        return None
    if whole_number(text) != expected:
        return f"{where}: {label} is {found!r} but the answer {key} is {expected}"
    return None


def env_name_matches(name: str, suffix: str) -> bool:
    """True for ``SUFFIX`` or ``ANY_PREFIX_SUFFIX``."""
    return re.fullmatch(rf"(?:[A-Za-z0-9_]*_)?{suffix}", name) is not None


def text_timeouts(text: str) -> Iterator[tuple[str, str, str]]:
    """Yield ``(answer key, label, value)`` for each flag or env var set in free text.

    Tokens are split on whitespace, quotes, commas, brackets, ``=`` and backslashes, so
    ``"--flag", "1"``, ``--flag=1``, ``--flag 1`` and ``ENV X_FLAG_MS=1`` all give ``1``.
    """
    tokens = _TOKEN.findall(text)
    for index, token in enumerate(tokens[:-1]):
        for key, flag, suffix in TIMEOUTS:
            if token == flag or env_name_matches(token, suffix):
                yield key, token, tokens[index + 1]


def yaml_timeouts(node: object) -> Iterator[tuple[str, str, object]]:
    """Yield ``(answer key, label, value)`` for every timeout set anywhere in a YAML document."""
    if isinstance(node, dict):
        name = node.get("name")
        for key, _flag, suffix in TIMEOUTS:
            if isinstance(name, str) and env_name_matches(name, suffix) and "value" in node:
                yield key, f"env {name}", node["value"]
        for item_key, value in node.items():
            for key, _flag, suffix in TIMEOUTS:
                scalar = not isinstance(value, (dict, list))
                if scalar and isinstance(item_key, str) and env_name_matches(item_key, suffix):
                    yield key, item_key, value
            yield from yaml_timeouts(value)
    elif isinstance(node, list):
        scalars = [str(item) for item in node if not isinstance(item, (dict, list))]
        yield from text_timeouts(" ".join(scalars))
        for item in node:
            if isinstance(item, (dict, list)):
                yield from yaml_timeouts(item)
    elif isinstance(node, str):
        yield from text_timeouts(node)


def strip_dockerfile_comments(text: str) -> str:
    """Drop whole-line ``#`` comments so prose about the flags is not read as a setting."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def dockerfile_timeouts(root: Path, expected: Mapping[str, int]) -> list[str]:
    """Compare timeout flags and env vars in the ``Dockerfile`` (if any) with the answers."""
    path = root / "Dockerfile"
    if not path.is_file():
        return []
    text = strip_dockerfile_comments(path.read_text(encoding="utf-8"))
    problems = []
    for key, label, value in text_timeouts(text):
        if (problem := compare_timeout("Dockerfile", label, value, key, expected[key])) is not None:
            problems.append(problem)
    return problems


def kubernetes_timeouts(root: Path, expected: Mapping[str, int]) -> list[str]:
    """Compare timeout flags and env vars in ``k8s/**/*.yaml`` (if any) with the answers."""
    k8s = root / "k8s"
    if not k8s.is_dir():
        return []
    problems = []
    for path in iter_files(k8s, [".yaml", ".yml"]):
        where = relative(root, path)
        for document in yaml_documents(path):
            for key, label, value in yaml_timeouts(document):
                if (problem := compare_timeout(where, label, value, key, expected[key])) is not None:
                    problems.append(problem)
    return problems


def check_timeouts_agree(root: Path, answers: Mapping[str, object]) -> list[str]:
    """The idle-session lifetime and check interval in the ``Dockerfile`` and ``k8s/`` are the answers.

    ``check_answers_file`` compares the same two answers with ``answers.json``.
    """
    expected, problems = expected_timeouts(answers)
    if problems:
        return problems
    return dockerfile_timeouts(root, expected) + kubernetes_timeouts(root, expected)


# ---------------------------------------------------------------------------------------------
# Memory settings in k8s/
# ---------------------------------------------------------------------------------------------


def quantity_bytes(value: object) -> int | None:
    """A Kubernetes memory quantity (``512Mi``, ``1Gi``, ``2G``, a plain number) in bytes, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return PRE_GEN.quantity_to_bytes(str(value).strip())  # the one parser the answers went through


def pod_containers(document: object) -> list[dict]:
    """The containers (init containers included) of a workload or Pod manifest."""
    if not isinstance(document, dict) or not isinstance(document.get("spec"), dict):
        return []
    spec = document["spec"]
    if document.get("kind") in WORKLOAD_KINDS:
        spec = ((spec.get("template") or {}).get("spec")) or {}
    elif document.get("kind") != "Pod":
        return []
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    return [container for container in containers if isinstance(container, dict)]


def container_memory_problems(where: str, container: Mapping[str, object]) -> list[str]:
    """The container has a parseable memory limit and its memory request does not exceed it."""
    name = f"{where}: container {container.get('name', '?')!r}"
    resources = container.get("resources")
    resources = resources if isinstance(resources, dict) else {}
    request = (resources.get("requests") or {}).get("memory")
    limit = (resources.get("limits") or {}).get("memory")
    if limit is None:
        return [f"{name} has no memory limit"]
    limit_bytes = quantity_bytes(limit)
    if limit_bytes is None:
        return [f"{name}: memory limit {limit!r} is not a memory quantity"]
    if request is None:
        return []
    request_bytes = quantity_bytes(request)
    if request_bytes is None:
        return [f"{name}: memory request {request!r} is not a memory quantity"]
    if request_bytes > limit_bytes:
        return [f"{name}: memory request {request} is above the memory limit {limit}"]
    return []


def is_limit_setting(name: str) -> bool:
    """True for an env name of a setting that must stay below the memory limit."""
    return any(env_name_matches(name, suffix) for suffix in LIMIT_SUFFIXES)


def soft_limits(node: object) -> Iterator[tuple[str, object]]:
    """``(label, value)`` of every ``*_MEMORY_SOFT_LIMIT_MB`` / ``*_ADMISSION_LIMIT_MB`` map key or
    ``{name, value}`` env entry."""
    if isinstance(node, dict):
        name = node.get("name")
        if isinstance(name, str) and is_limit_setting(name) and "value" in node:
            yield f"env {name}", node["value"]
        for key, value in node.items():
            if isinstance(key, str) and is_limit_setting(key):
                if not isinstance(value, (dict, list)):
                    yield key, value
            else:
                yield from soft_limits(value)
    elif isinstance(node, list):
        for item in node:
            yield from soft_limits(item)


def soft_limit_problem(where: str, label: str, value: object, limit_bytes: int, limit: str) -> str | None:
    """Problem text unless ``value`` MiB is 0 (automatic: 80 % of the limit) or below ``limit_bytes``."""
    text = str(value).strip()
    if text.startswith("$"):
        return None
    if whole_number(text) is None:
        return f"{where}: {label} is {value!r}, not a whole number of MiB"
    if int(text) * 2**20 >= limit_bytes:
        return f"{where}: {label} is {text} MiB, not below the memory limit {limit}"
    return None


def check_memory_limits(root: Path, answers: Mapping[str, object]) -> list[str]:
    """In ``k8s/``: memory request <= limit per container, and every soft limit below the limit.

    The soft limit is compared with the smallest container memory limit in the manifests, or with
    the ``memory_limit`` answer when no manifest sets one.
    """
    k8s = root / "k8s"
    if not k8s.is_dir():
        return []
    problems: list[str] = []
    limits: list[tuple[int, str]] = []
    softs: list[tuple[str, str, object]] = []
    for path in iter_files(k8s, [".yaml", ".yml"]):
        where = relative(root, path)
        for document in yaml_documents(path):
            for container in pod_containers(document):
                problems += container_memory_problems(where, container)
                limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
                if (limit_bytes := quantity_bytes(limit)) is not None:
                    limits.append((limit_bytes, str(limit)))
            softs += [(where, label, value) for label, value in soft_limits(document)]
    if not limits:
        answer = str(answers.get("memory_limit", ""))
        if (answer_bytes := quantity_bytes(answer)) is None:
            if softs:
                problems.append(f"answers: memory_limit is {answer!r}, not a memory quantity")
            return problems
        limits.append((answer_bytes, answer))
    smallest, smallest_text = min(limits)
    for where, label, value in softs:
        if (problem := soft_limit_problem(where, label, value, smallest, smallest_text)) is not None:
            problems.append(problem)
    return problems


# ---------------------------------------------------------------------------------------------
# The session-signing key
# ---------------------------------------------------------------------------------------------


def env_file_values(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file as kustomize reads them (``#`` comments and blanks skipped)."""
    values = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def check_secret_key(root: Path, answers: Mapping[str, object]) -> list[str]:
    """With Kubernetes and signed sessions, ``k8s/secrets.env`` holds generated secrets of 32+ characters.

    ``BOKEH_SECRET_KEY`` always, ``BOKEH_COOKIE_SECRET`` with login (``auth`` oidc), plus the
    client-secret line the user fills in. Without signed sessions the file must not exist.
    """
    path = root / SECRET_FILE
    wanted = is_on(answers, "include_kubernetes") and is_on(answers, "signed_sessions")
    if not wanted:
        return [f"{SECRET_FILE}: present although sessions are not signed"] if path.exists() else []
    if not path.is_file():
        return [f"{SECRET_FILE}: missing although signed_sessions is on"]
    text = path.read_text(encoding="utf-8")
    if SECRET_PLACEHOLDER in text:
        return [f"{SECRET_FILE}: the placeholder {SECRET_PLACEHOLDER!r} was not replaced"]
    values = env_file_values(text)
    generated = ["BOKEH_SECRET_KEY"]
    if answers.get("auth") == "oidc":
        generated.append("BOKEH_COOKIE_SECRET")
        client_secret = f"{str(answers.get('package_name', '')).upper()}_OIDC_CLIENT_SECRET"
        if client_secret not in values:
            return [f"{SECRET_FILE}: no {client_secret} line"]
    problems = []
    for name in generated:
        if name not in values:
            problems.append(f"{SECRET_FILE}: no {name} entry")
        elif len(values[name]) < MIN_SECRET_KEY_LENGTH:
            problems.append(f"{SECRET_FILE}: {name} is shorter than {MIN_SECRET_KEY_LENGTH} characters")
    present = [values[name] for name in generated if name in values]
    if len(set(present)) < len(present):
        problems.append(f"{SECRET_FILE}: two secrets have the same value")
    return problems


def project_problems(root: Path, answers: Mapping[str, object]) -> list[str]:
    """Every problem every check finds, except ``check_answers_file`` (it needs the answers.json layout)."""
    return (
        check_python_compiles(root)
        + check_structured_files(root)
        + check_no_template_leftovers(root, answers)
        + check_timeouts_agree(root, answers)
        + check_memory_limits(root, answers)
        + check_secret_key(root, answers)
    )
