"""Trim the generated project to the chosen options; only what a hook alone can do.

Runs inside the new project directory: removes the files of switched-off options (``k8s/``,
``k8s/secret.yaml``, ``deploy/nginx.conf`` and an emptied ``deploy/``), drops the baker's local
paths from ``.cookiecutter-replay.json``, and writes a fresh session-signing key made with
``secrets`` into the Secret (Jinja has no cryptographic random source). Whether the rendered
files are sound is checked by the template's own tests (``tests/rendered_checks.py``), not here.

Answers arrive only as JSON data inside a raw string, and the module imports cleanly while still
unrendered (``ANSWERS`` is then ``{}``), so tests can call each function on a plain dict.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

# tojson escapes ' so nothing in an answer can close this raw ''' string; keep the quotes.
_RENDERED_ANSWERS = r'''{{ cookiecutter | tojson }}'''  # fmt: skip

#: Keys of the replay record that hold paths of the machine that baked the project.
MACHINE_KEYS = ("_output_dir", "_repo_dir", "_checkout")
REMOTE_PREFIXES = ("gh:", "gl:", "bb:", "git@", "git+", "hg+")
REPLAY_FILE = ".cookiecutter-replay.json"
#: What ``k8s/secret.yaml`` holds in place of the key until ``fill_secret_key`` replaces it.
SECRET_PLACEHOLDER = "@GENERATED_SECRET_KEY@"
SECRET_FILE = "k8s/secret.yaml"
TRUE_WORDS = frozenset({"true", "yes", "y", "1", "on"})


def load_answers(raw: str) -> dict[str, object]:
    """Parse the rendered answers; ``{}`` while the file is still an unrendered template."""
    if raw.lstrip().startswith("{" * 2):
        return {}
    return dict(json.loads(raw))


ANSWERS: dict[str, object] = load_answers(_RENDERED_ANSWERS)


def is_on(answers: Mapping[str, object], key: str) -> bool:
    """Read a yes/no answer that may be a bool or a word such as ``"false"``."""
    value = answers.get(key, False)
    return value.strip().lower() in TRUE_WORDS if isinstance(value, str) else bool(value)


def remove_path(path: Path) -> bool:
    """Delete a file or directory tree if it exists; return whether something was removed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        return True
    if path.exists() or path.is_symlink():
        path.unlink()
        return True
    return False


def remove_disabled_parts(root: Path, answers: Mapping[str, object]) -> list[str]:
    """Delete the files of switched-off options; return what was removed."""
    removed = []
    if not is_on(answers, "include_kubernetes") and remove_path(root / "k8s"):
        removed.append("k8s/")
    if not is_on(answers, "signed_sessions") and remove_path(root / SECRET_FILE):
        removed.append(SECRET_FILE)
    deploy = root / "deploy"
    if not is_on(answers, "include_nginx"):
        if remove_path(deploy / "nginx.conf"):
            removed.append("deploy/nginx.conf")
        if deploy.is_dir() and not any(deploy.iterdir()):
            deploy.rmdir()
            removed.append("deploy/")
    return removed


def is_local_path(template: object) -> bool:
    """True when ``_template`` names a directory or zip on the baker's disk rather than a URL."""
    return isinstance(template, str) and "://" not in template and not template.startswith(REMOTE_PREFIXES)


def strip_replay_paths(replay: Path) -> bool:
    """Drop the baker's local paths from the replay record; return whether the file changed."""
    try:
        record = json.loads(replay.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # absent or broken: the template's tests report a broken file
    context = record.get("cookiecutter") if isinstance(record, dict) else None
    if not isinstance(context, dict):
        return False
    local = [key for key in MACHINE_KEYS if key in context]
    local += ["_template"] if is_local_path(context.get("_template")) else []
    for key in local:
        del context[key]
    if local:
        replay.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return bool(local)


def fill_secret_key(root: Path, make_key: Callable[[], str] | None = None) -> bool:
    """Replace the placeholder in ``k8s/secret.yaml`` with a new random key; return whether it did."""
    path = root / SECRET_FILE
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if SECRET_PLACEHOLDER not in text:
        return False
    key = make_key() if make_key is not None else secrets.token_urlsafe(48)
    path.write_text(text.replace(SECRET_PLACEHOLDER, key), encoding="utf-8")
    return True


def main(answers: Mapping[str, object], root: Path) -> None:
    """Trim the project in ``root`` to the answers, scrub the replay record, fill the key."""
    remove_disabled_parts(root, answers)
    strip_replay_paths(root / REPLAY_FILE)
    fill_secret_key(root)


if __name__ == "__main__":
    main(ANSWERS, Path.cwd())
