"""Trim the generated project to the chosen options and prove that what was rendered is sound.

Runs inside the new project directory. It first removes the parts the answers switched off
(Kubernetes manifests, the nginx config, the session-signing Secret) and the baker's local paths
from ``.cookiecutter-replay.json``, and writes a fresh random session-signing key into the Secret
(Jinja has no cryptographic random source). Then it checks that every Python file compiles, every
YAML/TOML/JSON file parses, no Jinja markup was left unrendered, the idle-session timeouts
agree between ``settings.py``, the ``Dockerfile`` and ``k8s/``, and the manifests' memory
settings are coherent (request <= limit, soft limit < limit). Any problem is printed as
``ERROR: <file>: <what>`` and the hook exits 1, so cookiecutter deletes the broken project
instead of handing it over.

Answers arrive only as JSON data inside a raw string, and the module imports cleanly while
still unrendered (``ANSWERS`` is then ``{}``), so tests can call each function on a plain dict.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - cookiecutter depends on PyYAML
    yaml = None

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    try:
        import tomli as tomllib
    except ImportError:
        tomllib = None

# tojson escapes ' so nothing in an answer can close this raw ''' string; keep the quotes.
_RENDERED_ANSWERS = r'''{{ cookiecutter | tojson }}'''  # fmt: skip

#: Keys of the replay record that hold paths of the machine that baked the project.
MACHINE_KEYS = ("_output_dir", "_repo_dir", "_checkout")
REPLAY_FILE = ".cookiecutter-replay.json"
SKIPPED_DIRS = frozenset({".git", "__pycache__"})
#: Jinja openers, built so this file itself stays free of them until rendered.
JINJA_MARKERS = ("{" + "{", "{" + "%", "{" + "#")
#: GitHub Actions expressions look like Jinja but belong in rendered workflow files.
GITHUB_EXPRESSION = "$" + "{" + "{"
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on"})

#: (answer key, Bokeh command-line flag, suffix of the environment variable overriding it)
TIMEOUTS = (
    ("unused_session_lifetime_ms", "--unused-session-lifetime", "UNUSED_SESSION_LIFETIME_MS"),
    ("check_unused_sessions_ms", "--check-unused-sessions", "CHECK_UNUSED_SESSIONS_MS"),
)
#: What ``k8s/secret.yaml`` holds in place of the key until ``fill_secret_key`` replaces it.
SECRET_PLACEHOLDER = "@GENERATED_SECRET_KEY@"
SECRET_FILE = "k8s/secret.yaml"
#: Bokeh warns about keys shorter than this (``bokeh/settings.py``).
MIN_SECRET_KEY_LENGTH = 32
#: Suffix of the setting (env var / ConfigMap key) holding the memory soft limit in MiB.
SOFT_LIMIT_SUFFIX = "MEMORY_SOFT_LIMIT_MB"
#: Kinds whose pods are described by ``spec.template.spec`` (a Pod's own spec is ``spec``).
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
_QUANTITY = re.compile(r"(?P<number>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?")
_SUFFIX_BYTES = {
    None: 1,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip
_BAKED_LITERAL = re.compile(r"json\.loads\(\s*r'''(.*?)'''\s*\)", re.DOTALL)
_TOKEN = re.compile(r"""[^\s"',\[\]=\\]+""")


def load_answers(raw: str) -> dict[str, object]:
    """Parse the rendered answers; ``{}`` while the file is still an unrendered template."""
    if raw.lstrip().startswith("{" * 2):
        return {}
    return dict(json.loads(raw))


ANSWERS: dict[str, object] = load_answers(_RENDERED_ANSWERS)


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


def remove_path(path: Path) -> bool:
    """Delete a file or directory tree if it exists; return whether something was removed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    if path.exists() or path.is_symlink():
        path.unlink()
        return True
    return False


def strip_replay_paths(replay: Path) -> bool:
    """Drop the baker's local paths from the replay record; return whether the file changed."""
    try:
        record = json.loads(replay.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # check_structured_files reports a broken file
    if not isinstance(record, dict):
        return False
    changed = False
    for context in (record, record.get("cookiecutter")):
        if not isinstance(context, dict):
            continue
        for key in MACHINE_KEYS:
            if key in context:
                del context[key]
                changed = True
        if is_local_path(context.get("_template")):
            del context["_template"]
            changed = True
    if changed:
        replay.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def is_local_path(template: object) -> bool:
    """True when ``_template`` names a directory or zip on the baker's disk rather than a URL."""
    if not isinstance(template, str):
        return False
    remote = ("gh:", "gl:", "bb:", "git@", "git+", "hg+")
    return "://" not in template and not template.startswith(remote)


def remove_disabled_parts(root: Path, answers: Mapping[str, object]) -> list[str]:
    """Delete the files of switched-off options and scrub the replay record; return what was removed."""
    removed = []
    if not is_on(answers, "include_kubernetes") and remove_path(root / "k8s"):
        removed.append("k8s/")
    if not is_on(answers, "signed_sessions") and remove_path(root / "k8s" / "secret.yaml"):
        removed.append("k8s/secret.yaml")
    if not is_on(answers, "include_nginx"):
        if remove_path(root / "deploy" / "nginx.conf"):
            removed.append("deploy/nginx.conf")
        deploy = root / "deploy"
        if deploy.is_dir() and not any(deploy.iterdir()):
            deploy.rmdir()
            removed.append("deploy/")
    replay = root / REPLAY_FILE
    if replay.is_file():
        strip_replay_paths(replay)
    return removed


def fill_secret_key(root: Path, make_key: Callable[[], str] | None = None) -> bool:
    """Replace the placeholder in ``k8s/secret.yaml`` with a new random key; return whether it did."""
    path = root / SECRET_FILE
    if not path.is_file():
        return False
    text = path.read_text(encoding="utf-8")
    if SECRET_PLACEHOLDER not in text:
        return False
    key = make_key() if make_key is not None else secrets.token_urlsafe(48)
    path.write_text(text.replace(SECRET_PLACEHOLDER, key), encoding="utf-8")
    return True


def check_secret_key(root: Path) -> list[str]:
    """``k8s/secret.yaml`` (if any) holds a real key: no placeholder, at least 32 characters."""
    path = root / SECRET_FILE
    if yaml is None or not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if SECRET_PLACEHOLDER in text:
        return [f"{SECRET_FILE}: the key placeholder {SECRET_PLACEHOLDER!r} was not replaced"]
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict)]
    except yaml.YAMLError:
        return []  # check_structured_files reports it
    problems = []
    for document in documents:
        data = {**(document.get("data") or {}), **(document.get("stringData") or {})}
        key = data.get("BOKEH_SECRET_KEY")
        if key is None:
            problems.append(f"{SECRET_FILE}: no BOKEH_SECRET_KEY entry")
        elif len(str(key)) < MIN_SECRET_KEY_LENGTH:
            short = f"shorter than {MIN_SECRET_KEY_LENGTH} characters"
            problems.append(f"{SECRET_FILE}: BOKEH_SECRET_KEY is {short}")
    return problems


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


def _parse_yaml(text: str) -> None:
    """Parse every document of a YAML stream (skipped without PyYAML)."""
    if yaml is not None:
        list(yaml.safe_load_all(text))


def _parse_toml(text: str) -> None:
    """Parse a TOML document (skipped without tomllib/tomli)."""
    if tomllib is not None:
        tomllib.loads(text)


PARSERS = {".yaml": _parse_yaml, ".yml": _parse_yaml, ".toml": _parse_toml, ".json": json.loads}


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


def read_text_file(path: Path) -> str | None:
    """The file's text, or ``None`` for binary (NUL bytes or not UTF-8) files."""
    data = path.read_bytes()
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


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
        for number, line in enumerate(text.splitlines(), start=1):
            found = [marker for marker in JINJA_MARKERS if marker in line]
            if found:
                problems.append(f"{rel}: unrendered template markup {found[0]!r} on line {number}")
    return problems


def compare_timeout(where: str, label: str, found: object, key: str, expected: int) -> str | None:
    """Problem text if ``found`` is not ``expected``; variable references (``$X``) are not checked."""
    text = str(found).strip()
    if text.startswith("$"):
        return None
    if not re.fullmatch(r"[0-9]+", text) or int(text) != expected:
        return f"{where}: {label} is {found!r} but the answer {key} is {expected}"
    return None


def _env_name_matches(name: str, suffix: str) -> bool:
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
            if token == flag or _env_name_matches(token, suffix):
                yield key, token, tokens[index + 1]


def yaml_timeouts(node: object) -> Iterator[tuple[str, str, object]]:
    """Yield ``(answer key, label, value)`` for every timeout set anywhere in a YAML document."""
    if isinstance(node, dict):
        name = node.get("name")
        for key, _flag, suffix in TIMEOUTS:
            if isinstance(name, str) and _env_name_matches(name, suffix) and "value" in node:
                yield key, f"env {name}", node["value"]
        for item_key, value in node.items():
            for key, _flag, suffix in TIMEOUTS:
                scalar = not isinstance(value, (dict, list))
                if scalar and isinstance(item_key, str) and _env_name_matches(item_key, suffix):
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


def _strip_dockerfile_comments(text: str) -> str:
    """Drop whole-line ``#`` comments so prose about the flags is not read as a setting."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def settings_timeouts(root: Path, package: str, expected: Mapping[str, int]) -> list[str]:
    """Compare the timeouts baked into ``src/<package>/settings.py`` with the answers."""
    path = root / "src" / package / "settings.py"
    where = relative(root, path)
    if not path.is_file():
        return [f"{where}: missing, so the baked session timeouts cannot be checked"]
    match = _BAKED_LITERAL.search(path.read_text(encoding="utf-8"))
    if match is None:
        return [f"{where}: no json.loads(r'''...''') literal with the baked answers found"]
    try:
        baked = json.loads(match[1])
    except ValueError as error:
        return [f"{where}: the baked answers literal is not valid JSON: {error}"]
    if not isinstance(baked, dict):
        return [f"{where}: the baked answers literal is not a JSON object"]
    problems = []
    for key, value in expected.items():
        if key not in baked:
            problems.append(f"{where}: baked answers lack {key!r}")
        elif (problem := compare_timeout(where, key, baked[key], key, value)) is not None:
            problems.append(problem)
    return problems


def dockerfile_timeouts(root: Path, expected: Mapping[str, int]) -> list[str]:
    """Compare timeout flags and env vars in the ``Dockerfile`` (if any) with the answers."""
    path = root / "Dockerfile"
    if not path.is_file():
        return []
    text = _strip_dockerfile_comments(path.read_text(encoding="utf-8"))
    problems = []
    for key, label, value in text_timeouts(text):
        problem = compare_timeout("Dockerfile", label, value, key, expected[key])
        if problem is not None:
            problems.append(problem)
    return problems


def kubernetes_timeouts(root: Path, expected: Mapping[str, int]) -> list[str]:
    """Compare timeout flags and env vars in ``k8s/**/*.yaml`` (if any) with the answers."""
    k8s = root / "k8s"
    if yaml is None or not k8s.is_dir():
        return []
    problems = []
    for path in iter_files(k8s, [".yaml", ".yml"]):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError:
            continue  # check_structured_files reports it
        where = relative(root, path)
        for document in documents:
            for key, label, value in yaml_timeouts(document):
                problem = compare_timeout(where, label, value, key, expected[key])
                if problem is not None:
                    problems.append(problem)
    return problems


def check_timeouts_agree(root: Path, answers: Mapping[str, object]) -> list[str]:
    """The idle-session lifetime and check interval are the answers everywhere they are written."""
    expected = {}
    for key, _flag, _suffix in TIMEOUTS:
        text = str(answers.get(key, "")).strip()
        if not re.fullmatch(r"[0-9]+", text):
            return [f"answers: {key} is {answers.get(key)!r}, not a whole number"]
        expected[key] = int(text)
    package = str(answers.get("package_name", ""))
    return (
        settings_timeouts(root, package, expected)
        + dockerfile_timeouts(root, expected)
        + kubernetes_timeouts(root, expected)
    )


def quantity_bytes(value: object) -> int | None:
    """A Kubernetes memory quantity (``512Mi``, ``1Gi``, ``2G``, a plain number) in bytes, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    match = _QUANTITY.fullmatch(str(value).strip())
    if match is None:
        return None
    return int(float(match["number"]) * _SUFFIX_BYTES[match["suffix"]])


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


def soft_limits(node: object) -> Iterator[tuple[str, object]]:
    """``(label, value)`` of every ``*_MEMORY_SOFT_LIMIT_MB`` map key or ``{name, value}`` env entry."""
    if isinstance(node, dict):
        name = node.get("name")
        if isinstance(name, str) and _env_name_matches(name, SOFT_LIMIT_SUFFIX) and "value" in node:
            yield f"env {name}", node["value"]
        for key, value in node.items():
            if isinstance(key, str) and _env_name_matches(key, SOFT_LIMIT_SUFFIX):
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
    if not re.fullmatch(r"[0-9]+", text):
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
    if yaml is None or not k8s.is_dir():
        return []
    problems: list[str] = []
    limits: list[tuple[int, str]] = []
    softs: list[tuple[str, str, object]] = []
    for path in iter_files(k8s, [".yaml", ".yml"]):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except yaml.YAMLError:
            continue  # check_structured_files reports it
        where = relative(root, path)
        for document in documents:
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


def main(answers: Mapping[str, object], root: Path) -> int:
    """Trim the project, run every check, print the problems; return the exit status."""
    remove_disabled_parts(root, answers)
    fill_secret_key(root)
    problems = (
        check_python_compiles(root)
        + check_structured_files(root)
        + check_no_template_leftovers(root, answers)
        + check_timeouts_agree(root, answers)
        + check_memory_limits(root, answers)
        + check_secret_key(root)
    )
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in the generated project; it was removed.", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(ANSWERS, Path.cwd()))
