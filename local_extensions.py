"""Jinja filters the template needs to write answers safely into non-Python files.

Jinja's built-in ``tojson`` escapes non-BMP characters as UTF-16 surrogate pairs, which TOML
rejects, so a project name with an emoji would render a broken ``pyproject.toml``. The
``toml_string`` filter writes a TOML basic string that round-trips any text.
"""

from __future__ import annotations

from jinja2 import Environment
from jinja2.ext import Extension

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
