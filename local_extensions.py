"""Jinja extensions of this template: a TOML string filter, and a guard that refuses Jinja in answers.

``toml_string``: Jinja's built-in ``tojson`` escapes non-BMP characters as UTF-16 surrogate
pairs, which TOML rejects, so a project name with an emoji would render a broken
``pyproject.toml``. The filter writes a TOML basic string that round-trips any text.

``AnswerMarkupGuard``: cookiecutter renders every answer given as extra context (``--no-input``,
``cookiecutter <template> key=value``, pytest-cookies ``extra_context``) or as a user-config
default with Jinja before any hook runs (``prompt.prompt_for_config`` -> ``render_variable`` ->
``env.from_string``), so ``{{ 7*7 }}`` became ``49`` and ``{% if %}`` crashed with a traceback.
Jinja hands every source to ``Extension.preprocess`` before parsing it; the guard raises
``AnswerHoldsJinja`` (an ``UndefinedError``) for a source with Jinja markup that the template
does not own. ``prompt_for_config`` turns that into ``UndefinedVariableInTemplate("Unable to
render variable '<key>'")``, which the CLI prints (with our message and cookiecutter's context
dump) before exiting 1; this happens before the replay record or any file is written. Answers
typed at the prompts are never rendered; the pre-gen hook refuses markup in those.

The sources the template owns, all read next to this file: the values of ``cookiecutter.json``
(the derived defaults), the hook scripts (rendered by ``hooks.py`` without a name), and the
paths of the project folder (``generate.py`` renders file and directory names without a name;
directory names arrive prefixed with the output path). File contents come with a template name
and are never answers.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path

from jinja2 import Environment
from jinja2.exceptions import UndefinedError
from jinja2.ext import Extension

TEMPLATE_ROOT = Path(__file__).resolve().parent
#: Jinja openers, built so this file never looks like a template itself.
JINJA_MARKERS = ("{" + "{", "{" + "%", "{" + "#")
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(value: object) -> str:
    """Return ``value`` as a quoted TOML basic string (control characters escaped)."""
    out = []
    for char in str(value):
        if char in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


class TomlStringExtension(Extension):
    """Registers the ``toml_string`` filter."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["toml_string"] = toml_string


class AnswerHoldsJinja(UndefinedError):
    """An answer holds Jinja markup; cookiecutter reports it as ``Unable to render variable '<key>'``."""


def strings_in(node: object) -> Iterator[str]:
    """Every string (keys and values) anywhere in a JSON value."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from strings_in(key)
            yield from strings_in(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings_in(item)


def project_folder(root: Path) -> Path | None:
    """The template's project folder, found the way cookiecutter's ``find_template`` finds it."""
    for path in sorted(root.iterdir()):
        if path.is_dir() and "cookiecutter" in path.name and "{" * 2 in path.name:
            return path
    return None


@functools.cache
def owned_sources(root: Path = TEMPLATE_ROOT) -> tuple[frozenset[str], tuple[str, ...]]:
    """The whole sources the template owns (defaults, hook scripts) and its templated relative paths."""
    context = json.loads((root / "cookiecutter.json").read_text(encoding="utf-8"))
    whole = set(strings_in(context))
    hooks = root / "hooks"
    if hooks.is_dir():
        whole |= {path.read_text(encoding="utf-8") for path in hooks.iterdir() if path.is_file()}
    folder = project_folder(root)
    paths: list[str] = []
    if folder is not None:
        whole.add(folder.name)
        paths = [path.relative_to(folder).as_posix() for path in folder.rglob("*")]
    return frozenset(whole), tuple(path for path in paths if has_markup(path))


def has_markup(text: str) -> bool:
    """True if ``text`` holds a Jinja opener."""
    return any(marker in text for marker in JINJA_MARKERS)


def template_owns(source: str, root: Path = TEMPLATE_ROOT) -> bool:
    """True for a source the template itself hands to Jinja (see the module docstring)."""
    whole, paths = owned_sources(root)
    if source in whole:
        return True
    normalized = Path(os.path.normpath(source)).as_posix()
    return any(normalized == path or normalized.endswith("/" + path) for path in paths)


def refuse_answer_markup(source: str, name: str | None, root: Path = TEMPLATE_ROOT) -> None:
    """Raise ``AnswerHoldsJinja`` if ``source`` is an answer (a nameless source the template
    does not own) holding Jinja markup."""
    if name is not None or not has_markup(source) or template_owns(source, root):
        return
    found = next(marker for marker in JINJA_MARKERS if marker in source)
    raise AnswerHoldsJinja(
        f"the answer {source!r} holds Jinja markup {found!r}; answers are plain text and are never "
        "run as templates: remove the braces"
    )


class AnswerMarkupGuard(Extension):
    """Refuses Jinja markup in answers before cookiecutter renders them (see the module docstring)."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        """Pass ``source`` on unchanged unless it is an answer holding Jinja markup."""
        refuse_answer_markup(source, name)
        return source
