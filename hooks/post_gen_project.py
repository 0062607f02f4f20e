"""Trim the generated project to the chosen options; only what a hook alone can do.

Runs inside the new project directory: removes the files of switched-off options (``k8s/``, the
edge not chosen, ``k8s/secrets.env``, ``deploy/nginx.conf`` and an emptied ``deploy/``), drops
the baker's local paths from ``.cookiecutter-replay.json``, and writes fresh random secrets made
with ``secrets`` into ``k8s/secrets.env`` (Jinja has no cryptographic random source), a file git
ignores. Whether the rendered files are sound is checked by the template's tests.

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
#: Each occurrence in ``k8s/secrets.env`` becomes its own random value (``fill_secrets``).
SECRET_PLACEHOLDER = "@GENERATED_SECRET@"
SECRET_FILE = "k8s/secrets.env"
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


def disabled_parts(answers: Mapping[str, object]) -> list[str]:
    """The paths the answers switch off, in removal order (``deploy/`` goes only when empty)."""
    parts = [] if is_on(answers, "include_kubernetes") else ["k8s/"]
    gateway = answers.get("edge", "gateway") == "gateway"
    parts += ["k8s/ingress.yaml"] if gateway else ["k8s/gateway.yaml", "k8s/httproute.yaml"]
    parts += [] if is_on(answers, "signed_sessions") else [SECRET_FILE]
    return parts + ([] if is_on(answers, "include_nginx") else ["deploy/nginx.conf", "deploy/"])


def remove_disabled_parts(root: Path, answers: Mapping[str, object]) -> list[str]:
    """Delete the files of switched-off options; return what was removed."""
    removed = []
    for part in disabled_parts(answers):
        path = root / part
        if not (part == "deploy/" and path.is_dir() and any(path.iterdir())) and remove_path(path):
            removed.append(part)
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


def fill_secrets(root: Path, make_secret: Callable[[], str] | None = None) -> int:
    """Replace each placeholder in ``k8s/secrets.env`` with its own random value; return how many."""
    path, make = root / SECRET_FILE, make_secret or (lambda: secrets.token_urlsafe(48))
    parts = path.read_text(encoding="utf-8").split(SECRET_PLACEHOLDER) if path.is_file() else [""]
    if len(parts) > 1:
        path.write_text(parts[0] + "".join(make() + part for part in parts[1:]), encoding="utf-8")
    return len(parts) - 1


def main(answers: Mapping[str, object], root: Path) -> None:
    """Trim the project in ``root`` to the answers, scrub the replay record, fill the secrets."""
    remove_disabled_parts(root, answers)
    strip_replay_paths(root / REPLAY_FILE)
    fill_secrets(root)


if __name__ == "__main__":
    main(ANSWERS, Path.cwd())
